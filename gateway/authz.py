"""Envoy's external authorization service: API keys, scopes and quotas at the edge.

Envoy asks before it routes each public call. The answer reserves the call's usage record
and carries its id, tenant and key to the backend's side of Envoy (and into the access
log, which settles the record) and strips the key, so it never leaves the edge.
"""

from __future__ import annotations

import base64
import math

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import status_pb2

from cadenza.kit.interceptor import Context
from gateway import keys
from gateway.access import CALL_ID_HEADER, Access, Decision
from gateway.edge.config import KEY_HEADER, TENANT_HEADER

_BACKEND_SCOPES = frozenset(scope for scope in keys.SERVICE_SCOPES.values() if scope != "admin")
_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
# The HTTP status a REST caller sees; gRPC callers get grpc-status set explicitly,
# because Envoy's HTTP-to-gRPC mapping would turn 429 into UNAVAILABLE.
_HTTP = {16: 401, 8: 429}


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=key, value=value),
                                      append_action=_OVERWRITE)


def _denied(decision: Decision) -> external_auth_pb2.CheckResponse:
    code = decision.code.value[0]
    headers = [_header("grpc-status", str(code)), _header("grpc-message", decision.message)]
    # REST calls reach this check already transcoded to gRPC, so REST callers get the
    # HTTP status, Retry-After and the message as plain text.
    body = decision.message
    if decision.retry_after_s > 0:
        headers.append(_header("retry-after", str(max(1, math.ceil(decision.retry_after_s)))))
    if decision.status is not None:
        details = base64.b64encode(decision.status.SerializeToString()).decode()
        headers.append(_header("grpc-status-details-bin", details))
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code, message=decision.message),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=_HTTP.get(code, 403)),
            headers=headers, body=body))


class AuthorizationServicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    """envoy.service.auth.v3.Authorization over the gateway's keys and quota buckets."""

    def __init__(self, access: Access) -> None:
        self._access = access

    async def Check(self, request: external_auth_pb2.CheckRequest,
                    context: Context) -> external_auth_pb2.CheckResponse:
        """Allows the call with its principal attached, or denies it with the gRPC status."""
        http = request.attributes.request.http
        decision = await self._access.decide(http.headers.get("authorization", ""), http.path)
        if decision.code != grpc.StatusCode.OK:
            return _denied(decision)
        headers = [_header(TENANT_HEADER, decision.caller.tenant),
                   _header(KEY_HEADER, decision.caller.key_id)]
        answer = []
        # A call id a caller sent must never reach the access log as if it were ours.
        remove = [] if decision.record is not None else [CALL_ID_HEADER]
        if keys.scope_for(http.path) in _BACKEND_SCOPES:
            # Backends never see keys. The gateway's own services (reached here too when
            # a REST call is checked before its route opens) authenticate the key again.
            remove.append("authorization")
        if decision.record is not None:
            headers.append(_header(CALL_ID_HEADER, decision.record.request_id))
            answer.append(_header(CALL_ID_HEADER, decision.record.request_id))
        return external_auth_pb2.CheckResponse(
            status=status_pb2.Status(code=0),
            ok_response=external_auth_pb2.OkHttpResponse(
                headers=headers, headers_to_remove=remove,
                response_headers_to_add=answer))
