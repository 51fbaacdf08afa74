"""Tenancy scoping (jobsite.tenancy): own objects, the organization's, never
another organization's; superusers see everything; anonymous sees nothing."""
import pytest
from django.contrib.auth.models import AnonymousUser

from jobsite.exceptions import Forbidden, NotFound
from jobsite.models import Membership, Organization
from jobsite.tenancy import SYSTEM, scope_to_user, user_can_access, user_default_organization, user_organization_ids
from scheduling import selectors
from scheduling.models import Job

pytestmark = pytest.mark.django_db


def make_job(name, *, owner=None, organization=None) -> Job:
    return Job.objects.create(
        name=name, schedule_type="interval", schedule_expression="30", owner=owner, organization=organization
    )


@pytest.fixture
def jobs(make_user, user, org, other_org):
    colleague = make_user("bob", organization=org)
    stranger = make_user("carol", organization=other_org)
    return {
        "own": make_job("own", owner=user, organization=org),
        "own-no-org": make_job("own-no-org", owner=user),
        "colleague": make_job("colleague", owner=colleague, organization=org),
        "org-unowned": make_job("org-unowned", organization=org),
        "other-org": make_job("other-org", owner=stranger, organization=other_org),
        "stranger-no-org": make_job("stranger-no-org", owner=stranger),
        "nobody": make_job("nobody"),
    }


VISIBLE_TO_ALICE = {"own", "own-no-org", "colleague", "org-unowned"}


def visible_names(user) -> set[str]:
    return set(scope_to_user(Job.objects.all(), user).values_list("name", flat=True))


def test_member_sees_own_and_organization_objects(user, jobs):
    assert visible_names(user) == VISIBLE_TO_ALICE


@pytest.mark.parametrize("name", ["own", "own-no-org", "colleague", "org-unowned", "other-org", "stranger-no-org", "nobody"])
def test_user_can_access_agrees_with_scope(user, jobs, name):
    assert user_can_access(jobs[name], user) is (name in VISIBLE_TO_ALICE)


def test_other_organization_sees_only_its_own(make_user, other_org, jobs):
    dave = make_user("dave", organization=other_org)
    assert visible_names(dave) == {"other-org"}


def test_user_without_organization_sees_only_own(make_user, jobs):
    loner = make_user("loner")
    mine = make_job("mine", owner=loner)
    assert visible_names(loner) == {"mine"}
    assert user_can_access(mine, loner)
    assert not user_can_access(jobs["nobody"], loner)  # organization None never matches


def test_member_of_two_organizations_sees_both(user, other_org, jobs):
    Membership.objects.create(user=user, organization=other_org)
    assert visible_names(user) == VISIBLE_TO_ALICE | {"other-org"}


def test_superuser_sees_everything(superuser, jobs):
    assert visible_names(superuser) == set(jobs)
    assert all(user_can_access(job, superuser) for job in jobs.values())


def test_anonymous_sees_nothing(jobs):
    anonymous = AnonymousUser()
    assert visible_names(anonymous) == set()
    assert not any(user_can_access(job, anonymous) for job in jobs.values())
    assert user_organization_ids(anonymous) == []
    assert user_default_organization(anonymous) is None


def test_a_read_without_a_reader_is_refused_not_widened(jobs):
    # A view that forgets user= must fail loudly, never see every tenant.
    with pytest.raises(TypeError, match="user=SYSTEM"):
        scope_to_user(Job.objects.all(), None)
    with pytest.raises(TypeError):
        selectors.job_list(filters={})


def test_system_sees_every_tenant(jobs):
    assert set(selectors.job_list(user=SYSTEM).values_list("name", flat=True)) == set(jobs)
    assert user_default_organization(SYSTEM) is None


def test_forbidden_instead_of_not_found_where_a_facade_asks(user, jobs):
    # given a job alice cannot see
    hidden = next(job for job in jobs.values() if not user_can_access(job, user))
    # then the default is a 404 that does not reveal it, and a facade may ask for 403
    with pytest.raises(NotFound):
        selectors.job_get(user=user, job_id=hidden.pk)
    with pytest.raises(Forbidden, match="permission"):
        selectors.job_get(user=user, job_id=hidden.pk, forbidden="You don't have permission to access this job")
    # and a job that does not exist is still a 404
    with pytest.raises(NotFound):
        selectors.job_get(user=user, job_id=999999, forbidden="You don't have permission to access this job")


def test_custom_field_names(user, org, other_org):
    # other_org exists but alice is not in it
    # Membership has a user and an organization; scope it as if they were owner/org.
    assert set(scope_to_user(Organization.objects.all(), user, owner_field="memberships__user", org_field="pk")) == {org}


def test_scope_keeps_the_queryset_chainable(user, jobs):
    scoped = scope_to_user(Job.objects.select_related("owner"), user).filter(name__startswith="own").order_by("name")
    assert [job.name for job in scoped] == ["own", "own-no-org"]


def test_default_organization_is_the_first_membership(make_user, org, other_org):
    user = make_user("erin", organization=org)
    Membership.objects.create(user=user, organization=other_org)
    assert user_default_organization(user) == org
    assert user_default_organization(make_user("frank")) is None


def test_organization_ids_are_cached_per_user_object(user, org, django_assert_num_queries):
    assert user_organization_ids(user) == [org.pk]
    with django_assert_num_queries(0):
        assert user_organization_ids(user) == [org.pk]
