"""factory_boy factories for the project's models."""

from __future__ import annotations

import factory

from connector.models import BuiltinContact, BuiltinContactPhone, BuiltinCrmUser, CrmUser


class BuiltinCrmUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BuiltinCrmUser

    name = factory.Sequence(lambda n: f"builtin-user-{n}")


class BuiltinContactFactory(factory.django.DjangoModelFactory):
    """A built-in CRM contact; pass `phone_numbers=[...]` (E.164) to give it numbers."""

    class Meta:
        model = BuiltinContact
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Contact {n}")
    contact_type = "Contact"

    @factory.post_generation
    def phone_numbers(self, create: bool, extracted: list[str] | None, **kwargs: object) -> None:
        for number in extracted or []:
            BuiltinContactPhone.objects.create(contact=self, phone_number=number)


class CrmUserFactory(factory.django.DjangoModelFactory):
    """A connected App Connect user of the built-in CRM, made without going through login.

    Its API key (`access_token`) is not a real built-in CRM key; use the `crm_user` or
    `login` fixtures when the CRM must accept the credentials.
    """

    class Meta:
        model = CrmUser

    id = factory.Sequence(lambda n: f"{9000 + n}-builtin")
    platform = "builtin"
    name = factory.Sequence(lambda n: f"User {n}")
    timezone_offset = "+00:00"
    access_token = factory.Sequence(lambda n: f"test-api-key-{n}")
    user_settings = factory.LazyFunction(dict)
