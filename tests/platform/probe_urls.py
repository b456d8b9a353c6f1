"""The project's routes plus DRF views that raise each kind of error, for error-shape tests."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import path
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401
from config.urls import urlpatterns as project_urlpatterns
from lumina.kernel.errors import ConflictError


class EchoApi(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=10)
        limits = serializers.DictField(child=serializers.IntegerField(min_value=0))

    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["name"] == "taken":
            raise ConflictError("That name is taken.", fields={"name": ["Already used."]})
        if data.validated_data["name"] == "model":
            raise DjangoValidationError({"name": ["Rejected by the model."]})
        if data.validated_data["name"] == "boom":
            raise RuntimeError("a bug")
        return Response(data.validated_data, status=201)


urlpatterns = [
    *project_urlpatterns,
    path("api/v1/probe/echo", EchoApi.as_view()),
]
