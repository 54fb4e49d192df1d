"""The public methods an operation may run: checking a StartOperation request against
its method, packing responses, and how far along a running call is."""

from __future__ import annotations

from google.protobuf import any_pb2
from google.protobuf.descriptor import MethodDescriptor

from cadenza.gateway.v1 import gateway_pb2
from cadenza.generate.v1 import generate_pb2
from cadenza.kit.errors import InvalidArgument
from cadenza.recommend.v1 import recommend_pb2
from gateway.routes import Backend

MAX_CALLS = 1000
_TYPE_PREFIX = "type.googleapis.com/"
_GENERATE = "/cadenza.generate.v1.GenerateService/Generate"
_GENERATE_TEXT = "/cadenza.generate.v1.GenerateService/GenerateText"
_TRAIN = "/cadenza.recommend.v1.RecommendService/TrainModel"
_DEFAULT_TEMPO_BPM = 120.0  # generate's own default when a request names none
_DEFAULT_MAX_TOKENS = 256


def full_name(method: MethodDescriptor) -> str:
    """"/package.Service/Method"."""
    return f"/{method.containing_service.full_name}/{method.name}"


def find_method(name: str, backends: tuple[Backend, ...]) -> tuple[Backend, MethodDescriptor]:
    """The backend and public method a full method name names, or InvalidArgument."""
    service_name, _, method_name = name.strip("/").partition("/")
    for backend in backends:
        if backend.service.full_name == service_name:
            method = backend.service.methods_by_name.get(method_name)
            if method is not None:
                return backend, method
    example = "/cadenza.generate.v1.GenerateService/Generate"
    services = ", ".join(b.service.full_name for b in backends)
    raise InvalidArgument("method", f"{name!r} is not a public method: name one of {services} "
                          f"as \"/<service>/<method>\", e.g. {example!r}")


def check_calls(method: MethodDescriptor,
                request: gateway_pb2.StartOperationRequest) -> list[list[bytes]]:
    """Each call's request messages as bytes, or InvalidArgument naming the bad call."""
    if not request.calls:
        raise InvalidArgument("calls", "give at least one call (its request in messages)")
    if len(request.calls) > MAX_CALLS:
        raise InvalidArgument("calls", f"{len(request.calls)} calls: start at most "
                              f"{MAX_CALLS} per operation")
    wanted = method.input_type.full_name
    calls = []
    for i, call in enumerate(request.calls):
        if not call.messages:
            raise InvalidArgument(f"calls[{i}].messages", f"empty: pack a {wanted}")
        if not method.client_streaming and len(call.messages) > 1:
            raise InvalidArgument(f"calls[{i}].messages", f"{len(call.messages)} messages: "
                                  f"{method.name} takes one request per call")
        for j, message in enumerate(call.messages):
            if message.type_url.rpartition("/")[2] != wanted:
                raise InvalidArgument(f"calls[{i}].messages[{j}]",
                                      f"is a {message.type_url or 'message without a type'}; "
                                      f"{method.name} takes a {wanted}")
        calls.append([message.value for message in call.messages])
    return calls


def follow_to_the_end(request: gateway_pb2.StartOperationRequest) -> None:
    """Makes calls that would return before their work is done wait for it, so the
    operation ends when the work does and cancelling it stops the work (TrainModel)."""
    if request.method != _TRAIN:
        return
    for call in request.calls:
        for message in call.messages:
            train = recommend_pb2.TrainModelRequest.FromString(message.value)
            train.wait = True
            message.value = train.SerializeToString()


def pack(method: MethodDescriptor, response: bytes) -> any_pb2.Any:
    """A response of the method, as the bytes the backend sent, packed in an Any."""
    return any_pb2.Any(type_url=_TYPE_PREFIX + method.output_type.full_name, value=response)


class Progress:
    """How far one running call is, from the messages it has streamed back (0 to 1), for
    the methods whose messages say so; 0 for the others until they finish."""

    def __init__(self, method: str, request: bytes) -> None:
        self._method = method
        self._target = 0.0
        self.messages = 0
        self.fraction = 0.0
        if method == _GENERATE:
            self._target = _beats_asked(generate_pb2.GenerateRequest.FromString(request))
        elif method == _GENERATE_TEXT:
            text = generate_pb2.GenerateTextRequest.FromString(request)
            self._target = text.max_tokens if text.HasField("max_tokens") \
                else _DEFAULT_MAX_TOKENS

    def saw(self, message: bytes) -> None:
        """Counts one streamed message."""
        self.messages += 1
        if self._target <= 0:
            return
        if self._method == _GENERATE:
            item = generate_pb2.GenerateResponse.FromString(message)
            if item.HasField("event"):
                done = item.event.start_beats + item.event.duration_beats
                self.fraction = max(self.fraction, min(done / self._target, 0.99))
        else:
            self.fraction = min(self.messages / self._target, 0.99)


def _beats_asked(request: generate_pb2.GenerateRequest) -> float:
    if request.WhichOneof("length") == "bars":
        numerator = request.time_signature.partition("/")[0]
        return request.bars * (int(numerator) if numerator.isdigit() else 4)
    if request.WhichOneof("length") == "seconds":
        tempo = request.tempo_bpm if request.HasField("tempo_bpm") else _DEFAULT_TEMPO_BPM
        return request.seconds * tempo / 60.0
    return 0.0
