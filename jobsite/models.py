"""Tenancy: users belong to organizations; objects are owned by a user and
optionally an organization. Scoping lives in jobsite.tenancy."""
import uuid

from django.conf import settings
from django.db import models


class Organization(models.Model):
    id = models.UUIDField(
        primary_key=True, default=uuid.uuid4, editable=False,
        help_text="The organization_id that API clients send to file a job under this organization.",
    )
    name = models.CharField(
        max_length=200, unique=True,
        help_text="How people and the CLI recognize the organization; unique in this installation.",
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="Set once, when the organization is created.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        ADMIN = "admin", "Admin"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships",
        help_text="Sees and works with every job (and its executions) of the organization, not only their own.",
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships",
        help_text="Whose jobs the user gets access to. Deleting the membership takes that access away.",
    )
    role = models.CharField(
        max_length=20, choices=Role.choices, default=Role.MEMBER,
        help_text="For your records only: admins have no extra rights yet; every member has the same access.",
    )
    created_at = models.DateTimeField(
        auto_now_add=True,
        help_text="A user's new jobs go to the organization of their oldest membership unless they name one.",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="uniq_membership")]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class ExternalIdentity(models.Model):
    """Links a subject of an external identity provider (JWT ``iss`` + ``sub``)
    to the local user provisioned for it on its first valid token."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities",
        help_text="The local account this external login acts as; created for it on its first valid token.",
    )
    issuer = models.CharField(
        max_length=255, blank=True,
        help_text="The identity provider that vouches for the login: the token's iss claim ('' when absent).",
    )
    subject = models.CharField(
        max_length=255,
        help_text="The account's id at that provider (the token's sub claim); unique together with the issuer.",
    )
    created_at = models.DateTimeField(
        auto_now_add=True, help_text="When the first valid token of this login arrived and its user was provisioned.",
    )

    class Meta:
        verbose_name_plural = "external identities"
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="uniq_external_identity")]

    def __str__(self) -> str:
        return f"{self.issuer or '-'}:{self.subject}"
