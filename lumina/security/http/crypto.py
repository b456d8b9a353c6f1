"""REST endpoints for envelope encryption under ``/api/v1/encryption/``."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.security.http.actors import actor_of
from lumina.security.selectors.crypto import keyring_summary
from lumina.security.services import crypto as services
from lumina.security.services.authorization import require


def _usable_owner(value: str) -> str:
    if problem := services.owner_problem(value):
        raise serializers.ValidationError(problem)
    return value


def _encryptable(value: str) -> str:
    if problem := services.plaintext_problem(value):
        raise serializers.ValidationError(problem)
    return value


class OwnerField(serializers.CharField):
    def __init__(self, **kwargs) -> None:
        super().__init__(max_length=services.OWNER_MAX_LENGTH, validators=[_usable_owner], **kwargs)


class EncryptApi(APIView):
    """Encrypt a secret for an owner; store the returned ciphertext in the owner's record."""

    @extend_schema_serializer(component_name="EncryptInput")
    class InputSerializer(serializers.Serializer):
        # Secrets are taken exactly as given: no trimming.
        plaintext = serializers.CharField(trim_whitespace=False, validators=[_encryptable])
        owner = OwnerField()

    @extend_schema_serializer(component_name="EncryptOutput")
    class OutputSerializer(serializers.Serializer):
        ciphertext = serializers.CharField()

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        owner = data.validated_data["owner"]
        require(actor, services.ENCRYPT_ACTION, services.secret_resource(owner, actor))
        ciphertext = services.secret_encrypt(
            plaintext=data.validated_data["plaintext"], owner=owner, actor=actor
        )
        return Response(
            self.OutputSerializer({"ciphertext": ciphertext}).data, status=status.HTTP_201_CREATED
        )


class DecryptApi(APIView):
    """Decrypt a ciphertext made for ``owner`` (authorised and audited)."""

    @extend_schema_serializer(component_name="DecryptInput")
    class InputSerializer(serializers.Serializer):
        ciphertext = serializers.CharField(max_length=services.MAX_CIPHERTEXT_CHARS)
        owner = OwnerField()

    @extend_schema_serializer(component_name="DecryptOutput")
    class OutputSerializer(serializers.Serializer):
        plaintext = serializers.CharField(trim_whitespace=False)

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        plaintext = services.secret_decrypt(**data.validated_data, actor=actor_of(request))
        return Response(self.OutputSerializer({"plaintext": plaintext}).data)


class KeysApi(APIView):
    """Key-encryption key versions in the keyring and data keys per version; never key bytes."""

    @extend_schema_serializer(component_name="EncryptionKeysOutput")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="EncryptionKeyUsage")
        class UsageSerializer(serializers.Serializer):
            kek_version = serializers.IntegerField()
            data_keys = serializers.IntegerField()
            in_keyring = serializers.BooleanField()
            current = serializers.BooleanField()

        current_version = serializers.IntegerField()
        versions = serializers.ListField(child=serializers.IntegerField())
        usage = UsageSerializer(many=True)

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        require(actor_of(request), services.KEYS_READ_ACTION)
        return Response(self.OutputSerializer(keyring_summary()).data)


class RotateApi(APIView):
    """Re-wrap every data key under the newest key-encryption key; idempotent."""

    @extend_schema_serializer(component_name="KeyRotationOutput")
    class OutputSerializer(serializers.Serializer):
        kek_version = serializers.IntegerField()
        total = serializers.IntegerField()
        rewrapped = serializers.IntegerField()
        already_current = serializers.IntegerField()
        unavailable = serializers.IntegerField()
        unavailable_versions = serializers.ListField(child=serializers.IntegerField())
        failed = serializers.IntegerField()
        skipped = serializers.IntegerField()

    @extend_schema(request=None, responses=OutputSerializer)
    def post(self, request):
        actor = actor_of(request)
        require(actor, services.KEYS_ROTATE_ACTION)
        return Response(self.OutputSerializer(services.keys_rotate(actor=actor)).data)


urlpatterns = [
    path("encryption/encrypt", EncryptApi.as_view(), name="encryption-encrypt"),
    path("encryption/decrypt", DecryptApi.as_view(), name="encryption-decrypt"),
    path("encryption/keys", KeysApi.as_view(), name="encryption-keys"),
    path("encryption/rotate", RotateApi.as_view(), name="encryption-rotate"),
]
