from django.urls import path

from tracking import views

urlpatterns = [
    path("events/", views.live_events, name="live_events"),
    path("events/quarantine/", views.quarantine, name="quarantine"),
    path("people/", views.people, name="people"),
    path("people/<int:pk>/", views.person_detail, name="person_detail"),
    path("people/<int:pk>/erase/", views.person_erase, name="person_erase"),
]
