# Hand-written: keep it when regenerating migrations. Django cannot create a partitioned
# table, so the database gets this SQL while Django's state gets the plain CreateModel.
#
# The usage ledger is partitioned BY RANGE (occurred_at), one partition per UTC month,
# with a DEFAULT partition so that no row is ever refused. providers_usage_partition(day)
# creates the month's partition if it is missing (moving any rows of that month out of
# DEFAULT first); the migration creates this month's and the next two, and the ledger
# writer calls it for every month it is about to write into.

import uuid

import django.db.models.functions.datetime
from django.db import migrations, models

CREATE_LEDGER = """
CREATE TABLE providers_usagerecord (
    id uuid NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    recorded_at timestamp with time zone DEFAULT (STATEMENT_TIMESTAMP()) NOT NULL,
    request_id varchar(200) NOT NULL,
    operation varchar(32) NOT NULL,
    status varchar(16) NOT NULL,
    stream boolean NOT NULL,
    requested_model varchar(255) NOT NULL,
    user_id uuid NULL,
    token_id uuid NULL,
    provider_id uuid NULL,
    provider_name varchar(64) NOT NULL,
    deployment_id uuid NULL,
    model varchar(200) NOT NULL,
    input_tokens bigint NOT NULL,
    cached_input_tokens bigint NOT NULL,
    cache_write_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    reasoning_tokens bigint NOT NULL,
    estimated boolean NOT NULL,
    cost numeric(20, 10) NOT NULL,
    attempts smallint NOT NULL CHECK (attempts >= 0),
    latency_ms double precision NOT NULL,
    ttft_ms double precision NULL,
    error_code varchar(100) NOT NULL,
    -- A partitioned table's primary key must contain the partition key.
    CONSTRAINT providers_usagerecord_pkey PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);

CREATE TABLE providers_usagerecord_default PARTITION OF providers_usagerecord DEFAULT;

CREATE INDEX usage_occurred ON providers_usagerecord (occurred_at);
CREATE INDEX usage_user_occurred ON providers_usagerecord (user_id, occurred_at);
CREATE INDEX usage_token_occurred ON providers_usagerecord (token_id, occurred_at);

CREATE FUNCTION providers_usage_partition(moment date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    first_day date := date_trunc('month', moment)::date;
    lower_bound timestamptz := first_day::timestamp AT TIME ZONE 'UTC';
    upper_bound timestamptz := (first_day + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    partition_name text := 'providers_usagerecord_' || to_char(first_day, '"y"YYYY"m"MM');
BEGIN
    IF to_regclass(partition_name) IS NOT NULL THEN
        RETURN partition_name;
    END IF;
    IF EXISTS (
        SELECT 1 FROM providers_usagerecord_default
        WHERE occurred_at >= lower_bound AND occurred_at < upper_bound
    ) THEN
        -- The month's rows went to DEFAULT before its partition existed: move them in,
        -- since PostgreSQL refuses a partition whose rows DEFAULT still holds.
        EXECUTE format(
            'CREATE TABLE %I (LIKE providers_usagerecord INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
            partition_name
        );
        EXECUTE format(
            'INSERT INTO %I SELECT * FROM providers_usagerecord_default'
            ' WHERE occurred_at >= %L AND occurred_at < %L',
            partition_name, lower_bound, upper_bound
        );
        DELETE FROM providers_usagerecord_default
        WHERE occurred_at >= lower_bound AND occurred_at < upper_bound;
        EXECUTE format(
            'ALTER TABLE providers_usagerecord ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
            partition_name, lower_bound, upper_bound
        );
    ELSE
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF providers_usagerecord FOR VALUES FROM (%L) TO (%L)',
            partition_name, lower_bound, upper_bound
        );
    END IF;
    RETURN partition_name;
EXCEPTION WHEN duplicate_table OR unique_violation THEN
    -- Another process created it at the same moment.
    RETURN partition_name;
END;
$$;

SELECT providers_usage_partition(((now() AT TIME ZONE 'UTC') + make_interval(months => ahead))::date)
FROM generate_series(0, 2) AS ahead;
"""

DROP_LEDGER = """
DROP TABLE providers_usagerecord CASCADE;
DROP FUNCTION providers_usage_partition(date);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("providers", "0002_usage"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(CREATE_LEDGER, DROP_LEDGER)],
            state_operations=[
                migrations.CreateModel(
                    name="UsageRecord",
                    fields=[
                        (
                            "id",
                            models.UUIDField(
                                default=uuid.uuid4,
                                editable=False,
                                primary_key=True,
                                serialize=False,
                            ),
                        ),
                        (
                            "occurred_at",
                            models.DateTimeField(help_text="When the response completed (UTC)."),
                        ),
                        (
                            "recorded_at",
                            models.DateTimeField(
                                db_default=django.db.models.functions.datetime.Now(), editable=False
                            ),
                        ),
                        ("request_id", models.CharField(blank=True, default="", max_length=200)),
                        (
                            "operation",
                            models.CharField(help_text='"chat" or "embeddings".', max_length=32),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("ok", "ok"),
                                    ("error", "error"),
                                    ("cut", "cut"),
                                    ("cancelled", "cancelled"),
                                    ("rejected", "rejected"),
                                ],
                                max_length=16,
                            ),
                        ),
                        ("stream", models.BooleanField(default=False)),
                        (
                            "requested_model",
                            models.CharField(blank=True, default="", max_length=255),
                        ),
                        ("user_id", models.UUIDField(blank=True, null=True)),
                        ("token_id", models.UUIDField(blank=True, null=True)),
                        ("provider_id", models.UUIDField(blank=True, null=True)),
                        ("provider_name", models.CharField(blank=True, default="", max_length=64)),
                        ("deployment_id", models.UUIDField(blank=True, null=True)),
                        ("model", models.CharField(blank=True, default="", max_length=200)),
                        ("input_tokens", models.BigIntegerField(default=0)),
                        ("cached_input_tokens", models.BigIntegerField(default=0)),
                        ("cache_write_tokens", models.BigIntegerField(default=0)),
                        ("output_tokens", models.BigIntegerField(default=0)),
                        ("reasoning_tokens", models.BigIntegerField(default=0)),
                        (
                            "estimated",
                            models.BooleanField(
                                default=False,
                                help_text="Lumina counted the tokens because the provider sent none.",
                            ),
                        ),
                        (
                            "cost",
                            models.DecimalField(
                                decimal_places=10, default=0, help_text="US dollars.", max_digits=20
                            ),
                        ),
                        ("attempts", models.PositiveSmallIntegerField(default=1)),
                        ("latency_ms", models.FloatField(default=0.0)),
                        (
                            "ttft_ms",
                            models.FloatField(
                                blank=True, help_text="Time to first token (streams).", null=True
                            ),
                        ),
                        ("error_code", models.CharField(blank=True, default="", max_length=100)),
                    ],
                    options={
                        "db_table": "providers_usagerecord",
                        "ordering": ("-occurred_at",),
                        "indexes": [
                            models.Index(fields=["occurred_at"], name="usage_occurred"),
                            models.Index(
                                fields=["user_id", "occurred_at"], name="usage_user_occurred"
                            ),
                            models.Index(
                                fields=["token_id", "occurred_at"], name="usage_token_occurred"
                            ),
                        ],
                    },
                ),
            ],
        ),
    ]
