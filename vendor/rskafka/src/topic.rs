use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub partitions: BTreeSet<i32>,
    /// PATCH (tickpipe): the topic's id (Kafka's topic UUID), from Metadata v10+.
    ///
    /// `None` if the broker negotiated an older Metadata version (e.g. Kafka < 2.8, some Redpanda versions) or sent
    /// the all-zero UUID (Kafka's `Uuid.ZERO_UUID`). A topic that is deleted and created again under the same name
    /// gets a new id.
    pub topic_id: Option<TopicId>,
}

/// PATCH (tickpipe): a Kafka topic id (a 16-byte UUID).
///
/// [`Display`](fmt::Display) gives Kafka's string form (`Uuid.toString()`: URL-safe base64 without padding, 22
/// characters, e.g. `ASNFZ4mrze_-3LqYdlQyEA`), as printed by `kafka-topics.sh --describe` (`TopicId: ...`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicId(pub [u8; 16]);

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::with_capacity(22);
        for chunk in self.0.chunks(3) {
            let mut b = [0u8; 3];
            b[..chunk.len()].copy_from_slice(chunk);
            let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        f.write_str(&out)
    }
}

impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_topic_id_display_like_kafka() {
        // `new org.apache.kafka.common.Uuid(0x0123456789abcdefL, 0xfedcba9876543210L).toString()`
        let id = TopicId([
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54,
            0x32, 0x10,
        ]);
        assert_eq!(id.to_string(), "ASNFZ4mrze_-3LqYdlQyEA");
        assert_eq!(format!("{id:?}"), "TopicId(ASNFZ4mrze_-3LqYdlQyEA)");
        assert_eq!(TopicId([0; 16]).to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(TopicId([0xff; 16]).to_string(), "_____________________w");
    }
}
