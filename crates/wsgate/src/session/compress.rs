//! The session's side of permessage-deflate (`--compression`, negotiated at
//! the upgrade): which data frames go out compressed. A payload of at least
//! `--compression-min-bytes` on a connection that negotiated the extension is
//! written deflated with RSV1 set ([`super::writer::Writer::deflated`]);
//! smaller ones, and every control frame, go out as they are (RFC 7692 lets
//! each message choose). Inbound, [`super::reader`] inflates.

use bytes::Bytes;

use super::Session;
use crate::hub::Outgoing;

impl<S> Session<S> {
    /// Queues a data frame of `payload`, deflated when it qualifies. A frame
    /// on its way to many sockets (`shared`) is compressed once per codec for
    /// all of them ([`Outgoing::deflated`]); a reply to this connection only
    /// is compressed here. Uncompressed when compressing fails.
    pub(super) fn queue_data(&mut self, payload: Bytes, shared: Option<&Outgoing>) {
        let min = self.env.config.compression_min_bytes;
        match Some(&payload)
            .filter(|p| self.reader.deflate() && p.len() >= min)
            .and_then(|p| match shared {
                Some(d) => d.deflated(self.codec),
                None => crate::deflate::compress(p),
            }) {
            Some(deflated) => self.out.deflated(self.codec, deflated),
            None => self.out.data(self.codec, payload),
        }
    }
}
