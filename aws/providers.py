"""The one AccessProvider that services/ is given: each grant goes to its kind's adapter."""

from accessbot.services.ports import AccessProvider, GrantSpec, ProviderError


class ByKind:
    def __init__(self, providers: dict[str, AccessProvider]):
        self._providers = providers

    def grant(self, spec: GrantSpec) -> str | None:
        return self._for(spec).grant(spec)

    def revoke(self, spec: GrantSpec) -> None:
        self._for(spec).revoke(spec)

    def _for(self, spec: GrantSpec) -> AccessProvider:
        provider = self._providers.get(spec.kind)
        if provider is None:  # a grant of a kind this bot was not configured for
            raise ProviderError(f"No provider for access kind {spec.kind!r}: is it still "
                                "configured?", retryable=False)
        return provider
