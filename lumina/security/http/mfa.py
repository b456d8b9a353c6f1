"""REST endpoints for multi-factor authentication under ``/api/v1/auth/mfa/``.

Session-only: a second factor protects interactive sign-in, and an API token must not
be able to enrol or remove one.
"""

from __future__ import annotations

import base64

import django_otp
from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.security.api.sign_in import sign_in_code
from lumina.security.http.actors import client_ip
from lumina.security.http.permissions import IsFullyAuthenticated, IsPartiallyAuthenticated
from lumina.security.http.throttles import MfaAddressThrottle, account_locked
from lumina.security.selectors.mfa import device_type, mfa_status_get
from lumina.security.services import mfa as services
from lumina.security.services.auth import AccountLockedError


class CodeField(serializers.CharField):
    def __init__(self, **kwargs) -> None:
        super().__init__(
            max_length=64, help_text="A code from the app, or a backup code.", **kwargs
        )


@extend_schema_serializer(component_name="MfaDevice")
class DeviceOutput(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.ChoiceField(choices=["totp", "backup_codes"])
    name = serializers.CharField()
    confirmed = serializers.BooleanField()
    created_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)


@extend_schema_serializer(component_name="MfaStatus")
class StatusOutput(serializers.Serializer):
    enabled = serializers.BooleanField(
        help_text="A confirmed device exists, so sessions must verify a second factor."
    )
    devices = DeviceOutput(many=True)
    backup_codes_remaining = serializers.IntegerField()


class MfaApiView(APIView):
    authentication_classes = [SessionAuthentication]
    permission_classes = [IsFullyAuthenticated]


class MfaStatusApi(MfaApiView):
    """Where the caller stands with MFA (GET), or turn it off after re-entering the password."""

    @extend_schema_serializer(component_name="MfaDisableInput")
    class DisableInputSerializer(serializers.Serializer):
        password = serializers.CharField(
            max_length=4096,
            trim_whitespace=False,
            write_only=True,
            style={"input_type": "password"},
        )

    @extend_schema(responses=StatusOutput)
    def get(self, request):
        return Response(StatusOutput(mfa_status_get(user=request.user)).data)

    @extend_schema(
        request=DisableInputSerializer,
        responses={204: None},
        description=(
            "Turn MFA off: removes every device. The JSON body carries the account's "
            '{"password": "..."}; a wrong one is a 400 naming password.'
        ),
    )
    def delete(self, request):
        data = self.DisableInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.mfa_disable(
                user=request.user,
                password=data.validated_data["password"],
                ip_address=client_ip(request),
            )
        except AccountLockedError as exc:
            raise account_locked(exc) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class TotpEnrolApi(MfaApiView):
    """Start enrolling an authenticator app: scan the QR code, then confirm a first code.

    The answer is the only place the shared secret ever appears (inside the URI and QR
    code). Enrolling again replaces an enrolment that was never confirmed.
    """

    @extend_schema_serializer(component_name="TotpEnrolment")
    class OutputSerializer(serializers.Serializer):
        device_id = serializers.CharField()
        provisioning_uri = serializers.CharField(help_text="otpauth:// URI for the app.")
        qr_png = serializers.CharField(help_text="The URI as a QR code: base64 of a PNG image.")

    @extend_schema(request=None, responses={201: OutputSerializer})
    def post(self, request):
        enrolment = services.totp_enrol(user=request.user)
        body = {
            "device_id": enrolment.device.persistent_id,
            "provisioning_uri": enrolment.provisioning_uri,
            "qr_png": base64.b64encode(enrolment.qr_png).decode("ascii"),
        }
        response = Response(self.OutputSerializer(body).data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


class TotpConfirmApi(MfaApiView):
    """Confirm the enrolled app with a code it shows; MFA is on from then on."""

    @extend_schema_serializer(component_name="TotpConfirmInput")
    class InputSerializer(serializers.Serializer):
        code = CodeField()

    @extend_schema(request=InputSerializer, responses=StatusOutput)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        device = services.totp_confirm(
            user=request.user, code=data.validated_data["code"], ip_address=client_ip(request)
        )
        # The session that proved the new device counts as verified by it.
        _mark_verified(request, device)
        return Response(StatusOutput(mfa_status_get(user=request.user)).data)


class MfaVerifyApi(MfaApiView):
    """Pass the second factor for this session with an app code or a backup code."""

    permission_classes = [IsPartiallyAuthenticated]
    throttle_classes = [MfaAddressThrottle]

    @extend_schema_serializer(component_name="MfaVerifyInput")
    class InputSerializer(serializers.Serializer):
        code = CodeField()

    @extend_schema_serializer(component_name="MfaVerification")
    class OutputSerializer(serializers.Serializer):
        verified = serializers.BooleanField()
        device_type = serializers.CharField(
            help_text='Which device took the code: "totp" or "backup_codes".'
        )
        backup_codes_remaining = serializers.IntegerField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            device = sign_in_code(request, code=data.validated_data["code"])
        except AccountLockedError as exc:
            raise account_locked(exc) from None
        body = {
            "verified": True,
            "device_type": device_type(device),
            "backup_codes_remaining": mfa_status_get(user=request.user).backup_codes_remaining,
        }
        return Response(self.OutputSerializer(body).data)


class BackupCodesApi(MfaApiView):
    """Create 10 single-use backup codes, replacing earlier ones. They are shown only here."""

    @extend_schema_serializer(component_name="MfaBackupCodes")
    class OutputSerializer(serializers.Serializer):
        codes = serializers.ListField(child=serializers.CharField())

    @extend_schema(request=None, responses={201: OutputSerializer})
    def post(self, request):
        codes = services.backup_codes_generate(user=request.user, ip_address=client_ip(request))
        response = Response(
            self.OutputSerializer({"codes": codes}).data, status=status.HTTP_201_CREATED
        )
        response["Cache-Control"] = "no-store"
        return response


def _mark_verified(request, device) -> None:
    django_otp.login(request, device)
    request.session.cycle_key()  # as sign_in_code does, for the same reason


urlpatterns = [
    path("auth/mfa", MfaStatusApi.as_view(), name="mfa-status"),
    path("auth/mfa/totp", TotpEnrolApi.as_view(), name="mfa-totp-enrol"),
    path("auth/mfa/totp/confirm", TotpConfirmApi.as_view(), name="mfa-totp-confirm"),
    path("auth/mfa/verify", MfaVerifyApi.as_view(), name="mfa-verify"),
    path("auth/mfa/backup-codes", BackupCodesApi.as_view(), name="mfa-backup-codes"),
]
