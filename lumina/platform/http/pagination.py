"""Cursor-free page-number pagination with a bounded, client-chosen page size.

``page`` and ``page_size`` are checked, not guessed at: a malformed or out-of-bounds value
is a 400 naming the parameter (DRF would fall back to the default page size), and a page
past the last is a 404.
"""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination

MAX_PAGE_SIZE = 500


class _PageQuery(serializers.Serializer):
    page = serializers.IntegerField(min_value=1, required=False)
    page_size = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, required=False)


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    last_page_strings = ()

    def paginate_queryset(self, queryset, request, view=None):
        names = (self.page_query_param, self.page_size_query_param)
        # As for every other query parameter, an empty value means "not given".
        given = QueryDict(mutable=True)
        for name in names:
            if request.query_params.get(name):
                given[name] = request.query_params[name]
        query = _PageQuery(data=given)
        if not query.is_valid():
            raise ValidationError(query.errors)
        self._checked = query.validated_data
        return super().paginate_queryset(queryset, request, view)

    def get_page_number(self, request, paginator) -> int:
        return self._checked.get(self.page_query_param, 1)

    def get_page_size(self, request) -> int:
        return self._checked.get(self.page_size_query_param, self.page_size)

    def get_schema_operation_parameters(self, view) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.page_query_param: {"minimum": 1},
            self.page_size_query_param: {"minimum": 1, "maximum": MAX_PAGE_SIZE},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters
