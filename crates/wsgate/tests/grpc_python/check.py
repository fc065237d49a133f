"""The gRPC API from Python's stock tooling (grpcio, grpcio-tools,
grpcio-health-checking), with stubs generated from proto/ at run time.

Usage: check.py PROTO_DIR OUT_DIR GRPC_ADDR API_KEY USER
USER must have exactly one connection open on the node. Prints
DIRECT_ID=<id> for the direct message it published to USER; exits non-zero
(with a traceback) on the first check that fails.
"""

import json
import os
import sys

import grpc
import grpc_tools
from grpc_tools import protoc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from google.protobuf import json_format, struct_pb2

proto_dir, out_dir, addr, key, user = sys.argv[1:6]

os.makedirs(out_dir, exist_ok=True)
well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
rc = protoc.main([
    "grpc_tools.protoc",
    f"-I{proto_dir}",
    f"-I{well_known}",
    f"--python_out={out_dir}",
    f"--grpc_python_out={out_dir}",
    os.path.join(proto_dir, "wsgate/v1/gateway.proto"),
])
assert rc == 0, f"protoc failed: {rc}"
sys.path.insert(0, out_dir)
from wsgate.v1 import gateway_pb2 as pb  # noqa: E402
from wsgate.v1 import gateway_pb2_grpc as pb_grpc  # noqa: E402

TIMEOUT = 5
auth = [("authorization", f"Bearer {key}")]
channel = grpc.insecure_channel(addr)
grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
api = pb_grpc.GatewayStub(channel)


def value(obj):
    v = struct_pb2.Value()
    json_format.ParseDict(obj, v)
    return v


def expect_code(code, call, *args):
    try:
        call(*args, metadata=auth, timeout=TIMEOUT)
    except grpc.RpcError as e:
        assert e.code() == code, f"{e.code()} instead of {code}: {e.details()}"
        return e
    raise AssertionError(f"no {code}")


# Health and the key.
health = health_pb2_grpc.HealthStub(channel)
status = health.Check(health_pb2.HealthCheckRequest(service="wsgate.v1.Gateway"), timeout=TIMEOUT)
assert status.status == health_pb2.HealthCheckResponse.SERVING, status
try:
    api.GetUser(pb.GetUserRequest(user=user), timeout=TIMEOUT)
    raise AssertionError("no key, yet an answer")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e.code()

# Publish: direct, then room; presence; history.
content = {"from": "python", "n": 3, "list": [1, "a", None, True], "f": 0.5}
res = api.Publish(pb.PublishRequest(to=user, content=value(content), **{"from": "py-svc"}),
                  metadata=auth, timeout=TIMEOUT)
assert res.HasField("online") and res.online, res
print(f"DIRECT_ID={res.id}", flush=True)

u = api.GetUser(pb.GetUserRequest(user=user), metadata=auth, timeout=TIMEOUT)
assert (u.user, u.online, u.connections) == (user, True, 1), u

room = api.Publish(pb.PublishRequest(room="py-room", content=value(["in", "the", "room"])),
                   metadata=auth, timeout=TIMEOUT)
assert room.HasField("offset") and room.offset == 1 and room.epoch, room
h = api.RoomHistory(pb.RoomHistoryRequest(room="py-room"), metadata=auth, timeout=TIMEOUT)
assert (h.epoch, h.offset, len(h.messages)) == (room.epoch, 1, 1), h
m = h.messages[0]
assert (m.id, m.kind, m.room) == (room.id, pb.KIND_ROOM, "py-room"), m
assert json_format.MessageToDict(m.content) == ["in", "the", "room"], m.content

r = api.GetRoom(pb.GetRoomRequest(room="py-room"), metadata=auth, timeout=TIMEOUT)
assert (r.member_count, list(r.members), r.HasField("next_cursor")) == (0, [], False), r

nodes = api.ListNodes(pb.ListNodesRequest(), metadata=auth, timeout=TIMEOUT).nodes
assert len(nodes) == 1 and nodes[0].connections == 1 and nodes[0].started_at > 0, nodes

# Bad arguments.
e = expect_code(grpc.StatusCode.INVALID_ARGUMENT, api.Publish,
                pb.PublishRequest(to="not a name", content=value(1)))
assert dict(e.trailing_metadata()).get("wsgate-error") == "bad_request", e.trailing_metadata()
expect_code(grpc.StatusCode.INVALID_ARGUMENT, api.Publish, pb.PublishRequest(to=user))
expect_code(grpc.StatusCode.INVALID_ARGUMENT, api.GetRoom, pb.GetRoomRequest(room="x", limit=10_001))

# Last: the user is disconnected.
d = api.DisconnectUser(pb.DisconnectUserRequest(user=user), metadata=auth, timeout=TIMEOUT)
assert d.disconnected == 1, d
print("PYTHON_GRPC_OK", json.dumps({"direct": res.id, "room": room.id}), flush=True)
