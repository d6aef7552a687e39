"""The standard gRPC services beside ours: health checking and server reflection.

grpcio-health-checking leaves ``Health/List`` unimplemented, and grpcio-reflection
ships only the deprecated ``grpc.reflection.v1alpha``, while newer clients (grpcurl,
Postman, buf curl) speak only ``grpc.reflection.v1``. The v1 messages are the v1alpha
ones under a new package, field for field, so one servicer answers both; the v1 file
descriptor is derived from the v1alpha one, so clients can describe the v1 service too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import grpc
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway.server.grpc_lazy import Handlers, LazyService

HEALTH_SERVICE_NAME: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
_V1_FILE = "grpc/reflection/v1/reflection.proto"


class GatewayHealth(health.aio.HealthServicer):  # type: ignore[misc]  # grpc ships no types
    """grpc's asyncio health servicer, with ``List`` (a snapshot of every service's status)."""

    async def List(
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthListResponse:
        statuses = {name: health_pb2.HealthCheckResponse(status=s) for name, s in self._server_status.items()}
        return health_pb2.HealthListResponse(statuses=statuses)


def add_health(server: grpc.aio.Server) -> GatewayHealth:
    servicer = GatewayHealth()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


def _register_v1_descriptor(pool: descriptor_pool.DescriptorPool, v1alpha: descriptor.FileDescriptor) -> None:
    """Put grpc/reflection/v1/reflection.proto in ``pool`` (once), made from the v1alpha file."""
    try:
        pool.FindFileByName(_V1_FILE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    v1alpha.CopyToProto(proto)
    proto.name = _V1_FILE
    proto.package = "grpc.reflection.v1"
    old, new = ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(old):
                field.type_name = new + field.type_name[len(old) :]
    for service in proto.service:
        for method in service.method:
            method.input_type = new + method.input_type[len(old) :]
            method.output_type = new + method.output_type[len(old) :]
    proto.options.Clear()  # v1alpha's language options name v1alpha packages
    pool.AddSerializedFile(proto.SerializeToString())


def _reflection_handlers(names: Sequence[str], lazy: Sequence[LazyService]) -> Handlers:
    # Here, not at the top: grpcio-reflection loads at the first reflection call.
    from grpc_reflection.v1alpha import reflection, reflection_pb2

    for service in lazy:  # their messages' descriptors join the pool, so reflection describes them
        service.load()
    pool = descriptor_pool.Default()
    _register_v1_descriptor(pool, reflection_pb2.DESCRIPTOR)
    servicer = reflection.aio.ReflectionServicer(names, pool=pool)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    return {"ServerReflectionInfo": handler}


def add_reflection(server: grpc.aio.Server, services: Iterable[str], lazy: Sequence[LazyService] = ()) -> None:
    """Serve reflection for ``services`` (and the standard ones) under both v1 and v1alpha, built
    at its first call; ``lazy``: services (among ``services``) loaded then, so it can describe them."""
    names = (*services, HEALTH_SERVICE_NAME, REFLECTION_V1, REFLECTION_V1ALPHA)
    built: list[Handlers] = []

    def build() -> Handlers:
        if not built:  # one servicer for both names
            built.append(_reflection_handlers(names, lazy))
        return built[0]

    for name in (REFLECTION_V1, REFLECTION_V1ALPHA):
        server.add_generic_rpc_handlers((LazyService(name, build),))
