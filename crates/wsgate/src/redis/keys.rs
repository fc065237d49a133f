//! Every Redis key and channel name wsgate uses, built in one place.
//!
//! A key or channel about one user, room or node carries that name in a hash
//! tag (`wsgate:inbox:{alice}`), in every Redis mode, so everything about one
//! user (or room, or node) lives in one Redis Cluster slot and a script can
//! take all of its keys at once. Global names (`wsgate:nodes`,
//! `wsgate:broadcast`, `wsgate:inbox-expiries`) carry no tag. User ids, room
//! names, node ids and the prefix never contain `{` or `}` (names are
//! `[A-Za-z0-9_.:@-]`, checked on input), so the tag is always exactly the name.
//!
//! The full list, with types and who writes what, is in the [`crate::redis`]
//! module doc and in `docs/architecture.md`.

/// Builds key and channel names under one `--redis-prefix`.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    fn tagged(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}:{{{name}}}", self.prefix)
    }

    fn global(&self, kind: &str) -> String {
        format!("{}:{kind}", self.prefix)
    }

    // --- Channels.

    /// `{p}:node:{node}`: traffic for the users on one node, and control.
    pub fn node_channel(&self, node: &str) -> String {
        self.tagged("node", node)
    }

    /// `{p}:room:{room}`: a room's messages, presence and typing.
    pub fn room_channel(&self, room: &str) -> String {
        self.tagged("room", room)
    }

    /// The room of a [`Keys::room_channel`] name; `None` for another channel.
    pub fn room_of_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(":room:{")?
            .strip_suffix('}')
    }

    /// `{p}:broadcast`: cluster-wide broadcast.
    pub fn broadcast_channel(&self) -> String {
        self.global("broadcast")
    }

    // --- A user's slot.

    /// `{p}:inbox:{user}` (list of `"SEQ ID"`): the order of the unacked
    /// direct messages.
    pub fn inbox(&self, user: &str) -> String {
        self.tagged("inbox", user)
    }

    /// `{p}:inbox-msgs:{user}` (hash id → `sender|msgpack`): the messages.
    pub fn inbox_msgs(&self, user: &str) -> String {
        self.tagged("inbox-msgs", user)
    }

    /// `{p}:inbox-meta:{user}` (hash): `bytes`, `s:SENDER` counts, `seq`.
    pub fn inbox_meta(&self, user: &str) -> String {
        self.tagged("inbox-meta", user)
    }

    /// The four keys of one user's inbox, in the order every inbox script
    /// takes them (`crate::redis::scripts::inbox`).
    pub fn inbox_keys(&self, user: &str) -> [String; 4] {
        [
            self.inbox(user),
            self.inbox_msgs(user),
            self.inbox_meta(user),
            self.inbox_expiry(user),
        ]
    }

    /// `{p}:inbox-expiry:{user}` (string, ms): when the inbox expires.
    pub fn inbox_expiry(&self, user: &str) -> String {
        self.tagged("inbox-expiry", user)
    }

    /// `{p}:user:{user}` (hash node → connections): the routing registry.
    pub fn user(&self, user: &str) -> String {
        self.tagged("user", user)
    }

    /// `{p}:webhook-user-outbox:{user}` (list of event JSON): the user's
    /// webhook events between the script that decided them and the move to
    /// `{p}:events`.
    pub fn webhook_user_outbox(&self, user: &str) -> String {
        self.tagged("webhook-user-outbox", user)
    }

    /// `{p}:webhook-offline:{user}` (hash, with an expiry): `p` = "ID TIME" of
    /// the user's `user.offline` not yet decided, `s:ID` for those decided sent.
    pub fn webhook_offline(&self, user: &str) -> String {
        self.tagged("webhook-offline", user)
    }

    // --- A room's slot.

    /// `{p}:webhook-room-outbox:{room}` (list of event JSON): the room's
    /// webhook events not yet moved to `{p}:events`.
    pub fn webhook_room_outbox(&self, room: &str) -> String {
        self.tagged("webhook-room-outbox", room)
    }

    /// `{p}:members:{room}` (hash user → nodes): the room's members.
    pub fn members(&self, room: &str) -> String {
        self.tagged("members", room)
    }

    /// `{p}:member-nodes:{room}` (set of "node user"): which node holds which
    /// member, so a join or leave of one node is applied once.
    pub fn member_nodes(&self, room: &str) -> String {
        self.tagged("member-nodes", room)
    }

    /// `{p}:history:{room}` (stream, entry id `OFFSET-0`, field `m` = the
    /// message's bus envelope): the room's last `history-size` messages.
    pub fn history(&self, room: &str) -> String {
        self.tagged("history", room)
    }

    /// `{p}:history-meta:{room}` (hash: `epoch`, `offset`): the room's
    /// position; its loss starts a new epoch.
    pub fn history_meta(&self, room: &str) -> String {
        self.tagged("history-meta", room)
    }

    // --- A node's slot.

    /// `{p}:nodeinfo:{node}` (hash): connections, started_at.
    pub fn node_info(&self, node: &str) -> String {
        self.tagged("nodeinfo", node)
    }

    /// `{p}:node-users:{node}` (hash user → connections): the users a node
    /// registered, so a reaper can undo them.
    pub fn node_users(&self, node: &str) -> String {
        self.tagged("node-users", node)
    }

    /// `{p}:node-rooms:{node}` (set of "room user"): the memberships a node
    /// registered, so a reaper can undo them.
    pub fn node_rooms(&self, node: &str) -> String {
        self.tagged("node-rooms", node)
    }

    /// `{p}:reaper:{node}` (string, with a lease): the node reaping it.
    pub fn reaper(&self, node: &str) -> String {
        self.tagged("reaper", node)
    }

    // --- Global.

    /// `{p}:nodes` (zset node → last heartbeat, Redis time in ms).
    pub fn nodes(&self) -> String {
        self.global("nodes")
    }

    /// `{p}:inbox-expiries` (zset user → inbox expiry ms): the sweeper's index.
    pub fn inbox_expiries(&self) -> String {
        self.global("inbox-expiries")
    }

    /// `{p}:events` (stream, fields `type` and `event`): webhook events,
    /// read by the consumer group `wsgate` (contract section 10).
    pub fn events(&self) -> String {
        self.global("events")
    }

    /// `{p}:webhook-outbox-index` (zset "u USER OP" / "r ROOM OP" → ms):
    /// outboxes a step may have left events in; swept by every node.
    pub fn webhook_outbox_index(&self) -> String {
        self.global("webhook-outbox-index")
    }

    /// `{p}:webhook-reader` (string node, with a lease): the node reading `{p}:events`.
    pub fn webhook_reader(&self) -> String {
        self.global("webhook-reader")
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;

    #[test]
    fn names_carry_the_hash_tag_of_what_they_are_about() {
        let k = Keys::new("wsgate");
        assert_eq!(k.inbox("alice"), "wsgate:inbox:{alice}");
        assert_eq!(k.inbox_expiry("alice"), "wsgate:inbox-expiry:{alice}");
        assert_eq!(k.inbox_msgs("alice"), "wsgate:inbox-msgs:{alice}");
        assert_eq!(k.inbox_meta("alice"), "wsgate:inbox-meta:{alice}");
        assert_eq!(k.user("alice"), "wsgate:user:{alice}");
        assert_eq!(k.members("lobby"), "wsgate:members:{lobby}");
        assert_eq!(k.member_nodes("lobby"), "wsgate:member-nodes:{lobby}");
        assert_eq!(k.room_channel("lobby"), "wsgate:room:{lobby}");
        assert_eq!(k.node_channel("node-1"), "wsgate:node:{node-1}");
        assert_eq!(k.node_info("node-1"), "wsgate:nodeinfo:{node-1}");
        assert_eq!(k.node_users("node-1"), "wsgate:node-users:{node-1}");
        assert_eq!(k.node_rooms("node-1"), "wsgate:node-rooms:{node-1}");
        assert_eq!(k.reaper("node-1"), "wsgate:reaper:{node-1}");
        assert_eq!(
            k.webhook_user_outbox("alice"),
            "wsgate:webhook-user-outbox:{alice}"
        );
        assert_eq!(k.webhook_offline("alice"), "wsgate:webhook-offline:{alice}");
        assert_eq!(
            k.webhook_room_outbox("lobby"),
            "wsgate:webhook-room-outbox:{lobby}"
        );
    }

    #[test]
    fn global_names_carry_no_tag() {
        let k = Keys::new("app");
        assert_eq!(k.nodes(), "app:nodes");
        assert_eq!(k.broadcast_channel(), "app:broadcast");
        assert_eq!(k.room_of_channel(&k.room_channel("lobby")), Some("lobby"));
        assert_eq!(k.room_of_channel(&k.node_channel("lobby")), None);
        assert_eq!(k.inbox_expiries(), "app:inbox-expiries");
        assert_eq!(k.events(), "app:events");
        assert_eq!(k.webhook_outbox_index(), "app:webhook-outbox-index");
        assert_eq!(k.webhook_reader(), "app:webhook-reader");
    }
}
