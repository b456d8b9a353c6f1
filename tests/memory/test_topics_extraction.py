"""Pure parts of topics and the graph: entity/relation extraction, clustering, c-TF-IDF."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lumina.memory.services.entity_extraction import (
    MalformedExtraction,
    extract,
    llm_prompt,
    normalize,
    parse_llm_answer,
)
from lumina.memory.services.topic_clustering import c_tf_idf, cluster


def relations(extraction, *, co=False):
    return {
        (r.source, r.kind, r.target)
        for r in extraction.relations
        if co or r.kind not in ("mentioned_with", "mentions")
    }


def kinds(extraction):
    return {e.key: e.kind for e in extraction.entities}


def test_family_work_and_place_relations_are_typed_from_the_speaker():
    found = extract(
        "My sister Ana moved to Lisbon last spring. She works at Google now.", speaker="Caroline"
    )
    assert kinds(found) == {
        "ana": "person",
        "caroline": "person",
        "google": "organization",
        "lisbon": "place",
    }
    # Ana is who moved; "she works at" names nobody the rules can tell.
    assert relations(found) == {
        ("caroline", "family", "ana"),
        ("ana", "lives_in", "lisbon"),
    }
    # Every pair of entities in one text is also linked by co-mention.
    assert ("ana", "mentioned_with", "google") in relations(found, co=True)


def test_the_subject_of_a_verb_is_the_name_before_it_or_the_speaker():
    assert relations(extract("Ana works at Farfetch now.", speaker="Caroline")) == {
        ("ana", "works_at", "farfetch")
    }
    assert relations(extract("I moved to Leeds in May.", speaker="Jonas")) == {
        ("jonas", "lives_in", "leeds")
    }
    assert relations(extract("He moved to Leeds.", speaker="Jonas")) == set()


def test_name_before_role_pets_activities_and_possessions():
    found = extract("Max is my dog. I love hiking and I bought a new guitar.", speaker="Jon")
    assert ("jon", "pet", "max") in relations(found)
    assert ("jon", "likes", "hiking") in relations(found)
    assert ("jon", "owns", "guitar") in relations(found) or (
        "jon",
        "owns",
        "new guitar",
    ) in relations(found)
    found = extract("I signed up for a pottery class with Melanie.", speaker="Caroline")
    assert ("caroline", "member_of", "pottery class") in relations(found)
    assert kinds(found)["melanie"] == "other"


def test_sentence_openers_months_and_pronouns_are_not_entities():
    found = extract("The weather was great. Yesterday I met Priya in March. Thanks! Oh well.")
    assert set(kinds(found)) == {"priya"}


def test_multiword_names_with_connectors_and_organisations():
    found = extract("I got into the University of Lisbon and visited Yosemite National Park.")
    assert kinds(found)["university of lisbon"] == "organization"
    assert "yosemite national park" in kinds(found)


def test_generic_speakers_and_empty_text_give_nothing():
    assert extract("", speaker="user").entities == ()
    found = extract("hello there", speaker="assistant")
    assert found.entities == ()
    assert found.relations == ()


def test_normalize_folds_case_accents_spacing_and_possessive():
    assert normalize("  José's ") == "jose"
    assert normalize("New-York") == normalize("new  york") == "new york"


def test_llm_answer_is_parsed_into_the_same_shapes():
    answer = json.dumps(
        {
            "entities": [{"name": "Ana", "kind": "person"}, {"name": "Lisbon", "kind": "bogus"}],
            "relations": [{"source": "Ana", "target": "Lisbon", "kind": "lives_in"}],
        }
    )
    found = parse_llm_answer(f"```json\n{answer}\n```", speaker="Caroline")
    assert kinds(found) == {"ana": "person", "lisbon": "other", "caroline": "person"}
    assert relations(found) == {("ana", "lives_in", "lisbon")}
    system, user = llm_prompt("Ana lives in Lisbon", speaker="Caroline")
    assert "JSON" in system["content"]
    assert user["content"] == "Caroline: Ana lives in Lisbon"


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ("Sure! Ana lives in Lisbon.", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"entities": "Ana"}', "must be lists"),
        ('{"entities": [{"kind": "person"}]}', "entities[0]"),
        ('{"relations": [{"source": "Ana"}]}', "relations[0]"),
    ],
)
def test_malformed_llm_answers_are_refused_with_the_reason(answer, words):
    with pytest.raises(MalformedExtraction, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_llm_answer(answer)


def blobs(seed=7, per=12, dims=16):
    """Three well separated groups of vectors with their own vocabulary."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dims)[:3] * 5
    words = [
        "pottery clay kiln glaze bowl",
        "marathon running miles shoes race",
        "lisbon apartment move flat portuguese",
    ]
    texts, vectors, truth = [], [], []
    for group in range(3):
        for i in range(per):
            vectors.append(centres[group] + rng.normal(scale=0.3, size=dims))
            texts.append(f"{words[group]} note {i}")
            truth.append(group)
    order = rng.permutation(len(texts))
    return [texts[i] for i in order], np.asarray(vectors)[order], [truth[i] for i in order]


def test_clustering_recovers_separated_groups_with_their_keywords():
    texts, vectors, truth = blobs()
    result = cluster(texts, vectors)
    leaves = [t for t in result.topics if t.level == 0]
    # Each leaf holds members of one true group only, and every group has a leaf.
    groups = [{truth[i] for i in leaf.members} for leaf in leaves]
    assert all(len(g) == 1 for g in groups)
    assert {next(iter(g)) for g in groups} == {0, 1, 2}
    assert sum(len(leaf.members) for leaf in leaves) == len(texts)
    vocab = {"pottery", "marathon", "lisbon", "clay", "running", "apartment", "kiln", "miles"}
    assert all(vocab & set(leaf.keywords) for leaf in leaves)
    assert result.silhouette is not None
    assert result.silhouette > 0.5


def test_clustering_is_deterministic_and_builds_a_hierarchy_over_many_leaves():
    rng = np.random.default_rng(3)
    # Two families of four close groups each: parents should split the families.
    centres = []
    for family in range(2):
        base = np.zeros(32)
        base[family] = 10
        for sub in range(4):
            c = base.copy()
            c[2 + family * 4 + sub] = 4
            centres.append(c)
    vectors = np.concatenate([c + rng.normal(scale=0.2, size=(10, 32)) for c in centres])
    texts = [f"family{i // 40} group{i // 10} word{i % 3}" for i in range(len(vectors))]
    first = cluster(texts, vectors)
    second = cluster(texts, vectors)
    assert first == second
    parents = [t for t in first.topics if t.level == 1]
    leaves = [t for t in first.topics if t.level == 0]
    assert parents, "many leaves get parents"
    for parent in parents:
        children = [leaf for leaf in leaves if leaf.parent == parent.index]
        assert len(children) >= 2
        assert sorted(i for c in children for i in c.members) == list(parent.members)
        assert len({i // 40 for i in parent.members}) == 1, "a parent stays inside one family"


def test_clustering_edge_cases():
    assert cluster([], np.zeros((0, 4))).topics == ()
    one = cluster(["alone here"], np.ones((1, 4)))
    assert len(one.topics) == 1
    assert one.topics[0].members == (0,)
    with pytest.raises(ValueError, match="length"):
        cluster(["a", "b"], np.ones((1, 4)))
    with pytest.raises(ValueError, match="NaN"):
        cluster(["a", "b", "c", "d"], np.array([[np.nan, 1]] * 4))


def test_c_tf_idf_prefers_words_that_set_a_class_apart():
    docs = [
        "clay clay kiln the weekend was fun",
        "miles miles race the weekend was fun",
    ]
    (first, _), (second, _) = c_tf_idf(docs, top=2)
    assert set(first) <= {"clay", "kiln", "clay kiln"}
    assert "weekend" not in first
    assert set(second) <= {"miles", "race", "miles race"}
    assert c_tf_idf(["the and of", "is was"]) == [((), ()), ((), ())]
