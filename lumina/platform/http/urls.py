from django.urls import path

from lumina.platform.http import views

urlpatterns = [
    path("events/outbox", views.OutboxEventListApi.as_view(), name="outbox-list"),
    path(
        "events/outbox/<uuid:event_id>/replay",
        views.OutboxEventReplayApi.as_view(),
        name="outbox-replay",
    ),
]
