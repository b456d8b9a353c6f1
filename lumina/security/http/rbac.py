"""REST endpoints for RBAC under ``/api/v1/rbac/``: permissions, roles, assignments, grants."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.kernel.permissions import catalogue
from lumina.security.http.actors import actor_of
from lumina.security.http.authorization import Authorized
from lumina.security.http.permissions import IsFullyAuthenticated
from lumina.security.models.rbac import Role
from lumina.security.selectors import rbac as selectors
from lumina.security.services import rbac as services

MANAGE = [Authorized(services.MANAGE)]


class RoleOutput(serializers.ModelSerializer):
    class Meta:
        model = Role
        fields = (
            "id", "name", "description", "built_in", "permissions", "requires_mfa",
            "created_at", "updated_at",
        )  # fmt: skip


class PermissionListApi(APIView):
    """Every declared permission: what role patterns, token scopes and policies refer to."""

    permission_classes = [IsFullyAuthenticated]

    @extend_schema_serializer(component_name="Permission")
    class OutputSerializer(serializers.Serializer):
        name = serializers.CharField()
        description = serializers.CharField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        rows = [{"name": name, "description": text} for name, text in catalogue().items()]
        return Response(self.OutputSerializer(rows, many=True).data)


class RoleListApi(ListAPIView):
    """Roles by name (GET); create a custom role (POST)."""

    permission_classes = MANAGE
    serializer_class = RoleOutput

    @extend_schema_serializer(component_name="RoleCreateInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
        permissions = serializers.ListField(
            child=serializers.CharField(max_length=200), max_length=services.MAX_PATTERNS
        )
        requires_mfa = serializers.BooleanField(required=False, default=False)

    def get_queryset(self):
        return selectors.role_list()

    @extend_schema(request=InputSerializer, responses={201: RoleOutput})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        role = services.role_create(actor=actor_of(request), **data.validated_data)
        return Response(RoleOutput(role).data, status=201)


class RoleDetailApi(APIView):
    """One role: read, change (built-in roles keep name and permissions), delete."""

    permission_classes = MANAGE

    @extend_schema_serializer(component_name="RoleUpdateInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False)
        description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
        permissions = serializers.ListField(
            child=serializers.CharField(max_length=200),
            max_length=services.MAX_PATTERNS,
            required=False,
        )
        requires_mfa = serializers.BooleanField(required=False)

    @extend_schema(responses=RoleOutput)
    def get(self, request, role_id):
        return Response(RoleOutput(selectors.role_get(role_id=role_id)).data)

    @extend_schema(request=InputSerializer, responses=RoleOutput)
    def patch(self, request, role_id):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        role = services.role_update(actor=actor_of(request), role_id=role_id, **data.validated_data)
        return Response(RoleOutput(role).data)

    @extend_schema(responses={204: None})
    def delete(self, request, role_id):
        services.role_delete(actor=actor_of(request), role_id=role_id)
        return Response(status=204)


class _RoleRef(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class _UserRef(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()


class AssignmentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    role = _RoleRef()
    user = _UserRef(allow_null=True)
    group = serializers.CharField(source="group.name", allow_null=True, default=None)
    created_at = serializers.DateTimeField()


class AssignmentListApi(ListAPIView):
    """Role assignments, newest first, filtered by role, user or group (GET); assign (POST)."""

    permission_classes = MANAGE
    serializer_class = AssignmentOutput

    class FilterSerializer(serializers.Serializer):
        role = serializers.UUIDField(required=False)
        user = serializers.UUIDField(required=False)
        group = serializers.CharField(required=False, max_length=150)

    @extend_schema_serializer(component_name="AssignmentCreateInput")
    class InputSerializer(serializers.Serializer):
        role = serializers.CharField(max_length=100, help_text="Role id or name.")
        user = serializers.CharField(max_length=254, required=False, help_text="User id or email.")
        group = serializers.CharField(max_length=150, required=False, help_text="Group name.")

    def get_queryset(self):
        filters = self.FilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        given = filters.validated_data
        return selectors.assignment_list(
            role_id=given.get("role"), user_id=given.get("user"), group=given.get("group")
        )

    @extend_schema(parameters=[FilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=InputSerializer, responses={201: AssignmentOutput})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assignment = services.role_assignment_create(actor=actor_of(request), **data.validated_data)
        return Response(AssignmentOutput(assignment).data, status=201)


class AssignmentDetailApi(APIView):
    """One role assignment: read, or remove it (unassign)."""

    permission_classes = MANAGE

    @extend_schema(responses=AssignmentOutput)
    def get(self, request, assignment_id):
        assignment = selectors.assignment_get(assignment_id=assignment_id)
        return Response(AssignmentOutput(assignment).data)

    @extend_schema(responses={204: None})
    def delete(self, request, assignment_id):
        services.role_assignment_delete(actor=actor_of(request), assignment_id=assignment_id)
        return Response(status=204)


class GrantOutput(serializers.Serializer):
    id = serializers.CharField(help_text="'user-<n>' or 'group-<n>'.")
    principal_type = serializers.ChoiceField(choices=["user", "group"])
    principal_id = serializers.CharField(help_text="The user's id, or the group's name.")
    principal_label = serializers.CharField(help_text="The user's email, or the group's name.")
    action = serializers.CharField()
    resource_type = serializers.CharField()
    resource_id = serializers.CharField()


class GrantInput(serializers.Serializer):
    principal = serializers.CharField(
        max_length=300,
        help_text="A user id or email, or a group name (or 'user:<…>' / 'group:<name>').",
    )
    action = serializers.CharField(max_length=100, help_text="A declared permission.")
    resource_type = serializers.CharField(max_length=201, help_text="'<app_label>.<model>'.")
    resource_id = serializers.CharField(max_length=selectors.MAX_RESOURCE_ID_LENGTH)


class GrantApi(ListAPIView):
    """Object-level grants: list (GET), add (POST), remove (DELETE, naming the same fields)."""

    permission_classes = MANAGE
    serializer_class = GrantOutput

    class FilterSerializer(serializers.Serializer):
        resource_type = serializers.CharField(required=False, max_length=201)
        resource_id = serializers.CharField(required=False, max_length=255)
        user = serializers.UUIDField(required=False)
        group = serializers.CharField(required=False, max_length=150)
        action = serializers.CharField(required=False, max_length=100)

    def get_queryset(self):
        filters = self.FilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        given = dict(filters.validated_data)
        given["user_id"] = given.pop("user", None)
        return selectors.grant_list(**given)

    @extend_schema(parameters=[FilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=GrantInput,
        responses={
            201: GrantOutput,
            200: OpenApiResponse(GrantOutput, description="The grant existed already."),
        },
    )
    def post(self, request):
        data = GrantInput(data=request.data)
        data.is_valid(raise_exception=True)
        grant, created = services.grant_add(actor=actor_of(request), **data.validated_data)
        return Response(GrantOutput(grant).data, status=201 if created else 200)

    @extend_schema(parameters=[GrantInput], request=None, responses={204: None})
    def delete(self, request):
        # The grant is named by query parameters (a JSON body with the same fields works too).
        data = GrantInput(data=request.query_params or request.data)
        data.is_valid(raise_exception=True)
        services.grant_remove(actor=actor_of(request), **data.validated_data)
        return Response(status=204)


urlpatterns = [
    path("rbac/permissions", PermissionListApi.as_view(), name="rbac-permissions"),
    path("rbac/roles", RoleListApi.as_view(), name="rbac-roles"),
    path("rbac/roles/<uuid:role_id>", RoleDetailApi.as_view(), name="rbac-role"),
    path("rbac/assignments", AssignmentListApi.as_view(), name="rbac-assignments"),
    path(
        "rbac/assignments/<uuid:assignment_id>",
        AssignmentDetailApi.as_view(),
        name="rbac-assignment",
    ),
    path("rbac/grants", GrantApi.as_view(), name="rbac-grants"),
]
