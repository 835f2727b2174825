"""Single sign-on: OpenID Connect authorization code with PKCE (S256), through Authlib.

Authlib checks the ID token's signature, audience, expiry and nonce; ``identity`` then checks
the issuer against the configured one (Authlib only compares it with the discovered one) and
that the email address is verified, before anyone is matched to the staff register.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authlib.integrations.starlette_client import OAuth, OAuthError
from joserfc.errors import JoseError
from starlette.requests import Request
from starlette.responses import Response

from monitor.config_models import OpenIDConnect

CALLBACK_PATH = "/auth/callback"
# the errors Authlib 1.9 raises for a refused exchange or a bad ID token (joserfc's, not
# OAuthError): both must become a refusal page, never a 500
PROTOCOL_ERRORS: tuple[type[Exception], ...] = (OAuthError, JoseError, KeyError, ValueError)


class SignInRefused(Exception):
    """The provider's answer does not sign anyone in; the message is safe to show."""


@dataclass(frozen=True)
class Identity:
    """Who the provider vouches for."""

    email: str
    name: str
    subject: str


class SignOn:
    """The school's identity provider as an Authlib client."""

    def __init__(self, settings: OpenIDConnect, *, client_secret: str | None) -> None:
        self.settings = settings
        self.oauth = OAuth()
        kwargs: dict[str, Any] = {"scope": "openid email profile", "code_challenge_method": "S256"}
        if client_secret is None:
            kwargs["token_endpoint_auth_method"] = "none"  # a public client: PKCE alone
        self.oauth.register(
            "school",
            client_id=settings.client_id,
            client_secret=client_secret,
            server_metadata_url=f"{settings.issuer}/.well-known/openid-configuration",
            client_kwargs=kwargs,
        )
        self.client: Any = self.oauth.create_client("school")

    async def start(self, request: Request, redirect_uri: str) -> Response:
        """Redirect to the provider (state, nonce and the PKCE verifier kept in the session)."""
        response: Response = await self.client.authorize_redirect(request, redirect_uri)
        return response

    async def finish(self, request: Request) -> Identity:
        """The verified identity from the provider's redirect back; SignInRefused otherwise."""
        if request.query_params.get("error"):
            raise SignInRefused(
                "the sign-in was cancelled or refused at the identity provider"
                f" ({request.query_params.get('error')})"
            )
        try:
            token = await self.client.authorize_access_token(request)
        except PROTOCOL_ERRORS as exc:
            raise SignInRefused(
                f"the identity provider's answer was not accepted ({_why(exc)})"
            ) from exc
        claims = token.get("userinfo")
        if not claims:
            raise SignInRefused("the identity provider sent no ID token")
        return self.identity(dict(claims))

    async def check_id_token(self, token: dict[str, Any], *, nonce: str) -> Identity:
        """Validate a token response's ID token as ``finish`` does (signature, aud, nonce)."""
        try:
            claims = await self.client.parse_id_token(token, nonce=nonce)
        except PROTOCOL_ERRORS as exc:
            raise SignInRefused(f"the ID token was not accepted ({_why(exc)})") from exc
        return self.identity(dict(claims))

    def identity(self, claims: dict[str, Any]) -> Identity:
        """The identity in validated claims, once the issuer and the email are checked."""
        if claims.get("iss") != self.settings.issuer:
            raise SignInRefused("the ID token comes from another issuer")
        email = str(claims.get("email") or "").strip().lower()
        if not email:
            raise SignInRefused("the identity provider sent no email address")
        # Google: email_verified; Entra ID: the optional claim xms_edov (domain owner verified)
        if claims.get("email_verified") is not True and claims.get("xms_edov") is not True:
            raise SignInRefused("the identity provider has not verified this email address")
        return Identity(
            email=email, name=str(claims.get("name") or email), subject=str(claims["sub"])
        )


def _why(exc: Exception) -> str:
    if isinstance(exc, OAuthError):
        return exc.error or "protocol error"
    return type(exc).__name__
