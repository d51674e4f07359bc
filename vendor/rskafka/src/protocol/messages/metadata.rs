use std::io::{Read, Write};

use super::{
    ReadVersionedError, ReadVersionedType, RequestBody, WriteVersionedError, WriteVersionedType,
};
use crate::protocol::api_version::ApiVersionRange;
use crate::protocol::messages::{
    read_compact_versioned_array, read_versioned_array, write_compact_versioned_array,
    write_versioned_array,
};
use crate::protocol::{
    api_key::ApiKey,
    api_version::ApiVersion,
    error::Error,
    primitives::*,
    traits::{ReadError, ReadType, WriteType},
};

#[derive(Debug)]
pub struct MetadataRequest {
    /// The topics to fetch metadata for
    ///
    /// Requests data for all topics if None
    pub topics: Option<Vec<MetadataRequestTopic>>,

    /// If this is true, the broker may auto-create topics that we requested
    /// which do not already exist, if it is configured to do so.
    ///
    /// Added in version 4
    pub allow_auto_topic_creation: Option<Boolean>,
}

impl RequestBody for MetadataRequest {
    type ResponseBody = MetadataResponse;

    const API_KEY: ApiKey = ApiKey::Metadata;

    /// PATCH (tickpipe): up to v12 (upstream: v4), so that responses carry the topic id (v10+).
    /// v9+ is the flexible encoding. v12 is the first version in which Kafka implements topic ids
    /// in the request too (not used here: topics are always requested by name).
    const API_VERSION_RANGE: ApiVersionRange =
        ApiVersionRange::new(ApiVersion(Int16(0)), ApiVersion(Int16(12)));

    const FIRST_TAGGED_FIELD_IN_REQUEST_VERSION: ApiVersion = ApiVersion(Int16(9));
}

impl<W> WriteVersionedType<W> for MetadataRequest
where
    W: Write,
{
    fn write_versioned(
        &self,
        writer: &mut W,
        version: ApiVersion,
    ) -> Result<(), WriteVersionedError> {
        let v = version.0.0;
        assert!(v <= 12); // PATCH (tickpipe): was 4

        if v < 4 && self.allow_auto_topic_creation.is_some() {
            return Err(WriteVersionedError::FieldNotAvailable {
                version,
                field: "allow_auto_topic_creation".to_string(),
            });
        }

        // PATCH (tickpipe): compact array from v9 on.
        if v >= 9 {
            write_compact_versioned_array(writer, version, self.topics.as_deref())?;
        } else {
            write_versioned_array(writer, version, self.topics.as_deref())?;
        }
        if v >= 4 {
            match self.allow_auto_topic_creation {
                // The default behaviour is to allow topic creation
                None => Boolean(true).write(writer)?,
                Some(b) => b.write(writer)?,
            }
        }
        // PATCH (tickpipe): include_cluster_authorized_operations (v8-v10),
        // include_topic_authorized_operations (v8+), tagged fields (v9+).
        if (8..=10).contains(&v) {
            Boolean(false).write(writer)?;
        }
        if v >= 8 {
            Boolean(false).write(writer)?;
        }
        if v >= 9 {
            TaggedFields::default().write(writer)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct MetadataRequestTopic {
    /// The topic name
    pub name: String_,
}

impl<W> WriteVersionedType<W> for MetadataRequestTopic
where
    W: Write,
{
    fn write_versioned(
        &self,
        writer: &mut W,
        version: ApiVersion,
    ) -> Result<(), WriteVersionedError> {
        // PATCH (tickpipe): v10+ starts with the topic id (zero = look up by name), v9+ is flexible.
        let v = version.0.0;
        assert!(v <= 12);
        if v >= 10 {
            Uuid::default().write(writer)?;
        }
        if v >= 9 {
            CompactStringRef(&self.name.0).write(writer)?;
            TaggedFields::default().write(writer)?;
        } else {
            self.name.write(writer)?;
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq, Clone)]
pub struct MetadataResponse {
    /// The duration in milliseconds for which the request was throttled due to
    /// a quota violation, or zero if the request did not violate any quota.
    ///
    /// Added in version 3
    pub throttle_time_ms: Option<Int32>,

    /// Each broker in the response
    pub brokers: Vec<MetadataResponseBroker>,

    /// The cluster ID that responding broker belongs to.
    ///
    /// Added in version 2
    pub cluster_id: Option<NullableString>,

    /// The ID of the controller broker.
    ///
    /// Added in version 1
    pub controller_id: Option<Int32>,

    /// Each topic in the response
    pub topics: Vec<MetadataResponseTopic>,
}

impl<R> ReadVersionedType<R> for MetadataResponse
where
    R: Read,
{
    fn read_versioned(reader: &mut R, version: ApiVersion) -> Result<Self, ReadVersionedError> {
        let v = version.0.0;
        assert!(v <= 12); // PATCH (tickpipe): was 4

        let throttle_time_ms = (v >= 3).then(|| Int32::read(reader)).transpose()?;
        let brokers = read_array(reader, version)?;
        let cluster_id = (v >= 2)
            .then(|| read_nullable_string(reader, v))
            .transpose()?;
        let controller_id = (v >= 1).then(|| Int32::read(reader)).transpose()?;
        let topics = read_array(reader, version)?;
        // PATCH (tickpipe): cluster_authorized_operations (v8-v10) is skipped.
        if (8..=10).contains(&v) {
            Int32::read(reader)?;
        }
        if v >= 9 {
            TaggedFields::read(reader)?;
        }

        Ok(Self {
            throttle_time_ms,
            brokers,
            topics,
            cluster_id,
            controller_id,
        })
    }
}

#[derive(Debug, PartialEq, Eq, Clone)]
pub struct MetadataResponseBroker {
    /// The broker ID
    pub node_id: Int32,
    /// The broker hostname
    pub host: String_,
    /// The broker port
    pub port: Int32,
    /// Added in version 1
    pub rack: Option<NullableString>,
}

impl<R> ReadVersionedType<R> for MetadataResponseBroker
where
    R: Read,
{
    fn read_versioned(reader: &mut R, version: ApiVersion) -> Result<Self, ReadVersionedError> {
        let v = version.0.0;
        assert!(v <= 12); // PATCH (tickpipe): was 4

        let node_id = Int32::read(reader)?;
        let host = read_string(reader, v)?;
        let port = Int32::read(reader)?;
        let rack = (v >= 1)
            .then(|| read_nullable_string(reader, v))
            .transpose()?;
        if v >= 9 {
            TaggedFields::read(reader)?;
        }

        Ok(Self {
            node_id,
            host,
            port,
            rack,
        })
    }
}

#[derive(Debug, PartialEq, Eq, Clone)]
pub struct MetadataResponseTopic {
    /// The topic error if any
    pub error: Option<Error>,
    /// The topic name
    pub name: String_,
    /// PATCH (tickpipe): the topic id, added in version 10 (`None` before). Kafka sends the all-zero
    /// UUID for a topic that does not exist.
    pub topic_id: Option<Uuid>,
    /// True if the topic is internal
    pub is_internal: Option<Boolean>,
    /// Each partition in the topic
    pub partitions: Vec<MetadataResponsePartition>,
}

impl<R> ReadVersionedType<R> for MetadataResponseTopic
where
    R: Read,
{
    fn read_versioned(reader: &mut R, version: ApiVersion) -> Result<Self, ReadVersionedError> {
        let v = version.0.0;
        assert!(v <= 12); // PATCH (tickpipe): was 4

        let error = Error::new(Int16::read(reader)?.0);
        // PATCH (tickpipe): the name is nullable from v12 on (only for topics looked up by id, which
        // this crate never does); null becomes "".
        let name = if v >= 12 {
            String_(CompactNullableString::read(reader)?.0.unwrap_or_default())
        } else {
            read_string(reader, v)?
        };
        let topic_id = (v >= 10).then(|| Uuid::read(reader)).transpose()?;
        let is_internal = (v >= 1).then(|| Boolean::read(reader)).transpose()?;
        let partitions = read_array(reader, version)?;
        // PATCH (tickpipe): topic_authorized_operations (v8+) is skipped.
        if v >= 8 {
            Int32::read(reader)?;
        }
        if v >= 9 {
            TaggedFields::read(reader)?;
        }

        Ok(Self {
            error,
            name,
            topic_id,
            is_internal,
            partitions,
        })
    }
}

#[derive(Debug, PartialEq, Eq, Clone)]
pub struct MetadataResponsePartition {
    /// The partition error if any
    pub error: Option<Error>,
    /// The partition index
    pub partition_index: Int32,
    /// The ID of the leader broker
    pub leader_id: Int32,
    /// The set of all nodes that host this partition
    pub replica_nodes: Array<Int32>,
    /// The set of all nodes that are in sync with the leader for this partition
    pub isr_nodes: Array<Int32>,
}

impl<R> ReadVersionedType<R> for MetadataResponsePartition
where
    R: Read,
{
    fn read_versioned(reader: &mut R, version: ApiVersion) -> Result<Self, ReadVersionedError> {
        let v = version.0.0;
        assert!(v <= 12); // PATCH (tickpipe): was 4

        // PATCH (tickpipe): leader_epoch (v7+) and offline_replicas (v5+) are skipped.
        let error = Error::new(Int16::read(reader)?.0);
        let partition_index = Int32::read(reader)?;
        let leader_id = Int32::read(reader)?;
        if v >= 7 {
            Int32::read(reader)?;
        }
        let replica_nodes = read_int32_array(reader, v)?;
        let isr_nodes = read_int32_array(reader, v)?;
        if v >= 5 {
            read_int32_array(reader, v)?;
        }
        if v >= 9 {
            TaggedFields::read(reader)?;
        }

        Ok(Self {
            error,
            partition_index,
            leader_id,
            replica_nodes,
            isr_nodes,
        })
    }
}

// PATCH (tickpipe): helpers for the encodings that switch to compact ones in the flexible versions (v9+).

fn read_array<R: Read, T: ReadVersionedType<R>>(
    reader: &mut R,
    version: ApiVersion,
) -> Result<Vec<T>, ReadVersionedError> {
    let arr = if version.0.0 >= 9 {
        read_compact_versioned_array(reader, version)?
    } else {
        read_versioned_array(reader, version)?
    };
    Ok(arr.unwrap_or_default())
}

fn read_string<R: Read>(reader: &mut R, v: i16) -> Result<String_, ReadError> {
    Ok(if v >= 9 {
        String_(CompactString::read(reader)?.0)
    } else {
        String_::read(reader)?
    })
}

fn read_nullable_string<R: Read>(reader: &mut R, v: i16) -> Result<NullableString, ReadError> {
    Ok(if v >= 9 {
        NullableString(CompactNullableString::read(reader)?.0)
    } else {
        NullableString::read(reader)?
    })
}

fn read_int32_array<R: Read>(reader: &mut R, v: i16) -> Result<Array<Int32>, ReadError> {
    Ok(if v >= 9 {
        Array(CompactArray::<Int32>::read(reader)?.0)
    } else {
        Array::read(reader)?
    })
}

/// PATCH (tickpipe): the byte strings below were produced by Kafka 4.3.1's own serializers
/// (`MetadataResponseData` / `MetadataRequestData` + `MessageUtil.toByteBufferAccessor`, kafka-clients 4.3.1)
/// for every version 0-12: one broker (1, "h", 9092, rack "r"), cluster id "c", controller 1, one topic "t" with id
/// `ASNFZ4mrze_-3LqYdlQyEA` (v10+) and, in v9+, an unknown tagged field (tag 5) on the topic; one partition (0,
/// leader 1, leader epoch 3 in v7+, replicas [1], isr [1], offline [2] in v5+).
#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    const TOPIC_ID: [u8; 16] = [
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32,
        0x10,
    ];

    const RESPONSES: &[(i16, &str)] = &[
        (
            0,
            "000000010000000100016800002384000000010000000174000000010000000000000000000100000001000000010000000100000001",
        ),
        (
            1,
            "0000000100000001000168000023840001720000000100000001000000017400000000010000000000000000000100000001000000010000000100000001",
        ),
        (
            2,
            "0000000100000001000168000023840001720001630000000100000001000000017400000000010000000000000000000100000001000000010000000100000001",
        ),
        (
            3,
            "000000070000000100000001000168000023840001720001630000000100000001000000017400000000010000000000000000000100000001000000010000000100000001",
        ),
        (
            4,
            "000000070000000100000001000168000023840001720001630000000100000001000000017400000000010000000000000000000100000001000000010000000100000001",
        ),
        (
            5,
            "0000000700000001000000010001680000238400017200016300000001000000010000000174000000000100000000000000000001000000010000000100000001000000010000000100000002",
        ),
        (
            6,
            "0000000700000001000000010001680000238400017200016300000001000000010000000174000000000100000000000000000001000000010000000100000001000000010000000100000002",
        ),
        (
            7,
            "000000070000000100000001000168000023840001720001630000000100000001000000017400000000010000000000000000000100000003000000010000000100000001000000010000000100000002",
        ),
        (
            8,
            "0000000700000001000000010001680000238400017200016300000001000000010000000174000000000100000000000000000001000000030000000100000001000000010000000100000001000000028000000080000000",
        ),
        (
            9,
            "00000007020000000102680000238402720002630000000102000002740002000000000000000000010000000302000000010200000001020000000200800000000105030102038000000000",
        ),
        (
            10,
            "00000007020000000102680000238402720002630000000102000002740123456789abcdeffedcba98765432100002000000000000000000010000000302000000010200000001020000000200800000000105030102038000000000",
        ),
        (
            11,
            "00000007020000000102680000238402720002630000000102000002740123456789abcdeffedcba987654321000020000000000000000000100000003020000000102000000010200000002008000000001050301020300",
        ),
        (
            12,
            "00000007020000000102680000238402720002630000000102000002740123456789abcdeffedcba987654321000020000000000000000000100000003020000000102000000010200000002008000000001050301020300",
        ),
    ];

    /// Topic "t" by name.
    const REQUESTS: &[(i16, &str)] = &[
        (0, "00000001000174"),
        (1, "00000001000174"),
        (2, "00000001000174"),
        (3, "00000001000174"),
        (4, "0000000100017401"),
        (5, "0000000100017401"),
        (6, "0000000100017401"),
        (7, "0000000100017401"),
        (8, "00000001000174010000"),
        (9, "0202740001000000"),
        (10, "020000000000000000000000000000000002740001000000"),
        (11, "0200000000000000000000000000000000027400010000"),
        (12, "0200000000000000000000000000000000027400010000"),
    ];

    /// All topics (`topics: None`).
    const REQUESTS_ALL: &[(i16, &str)] = &[
        (1, "ffffffff"),
        (2, "ffffffff"),
        (3, "ffffffff"),
        (4, "ffffffff01"),
        (5, "ffffffff01"),
        (6, "ffffffff01"),
        (7, "ffffffff01"),
        (8, "ffffffff010000"),
        (9, "0001000000"),
        (10, "0001000000"),
        (11, "00010000"),
        (12, "00010000"),
    ];

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decode(v: i16, hex: &str) -> MetadataResponse {
        let data = unhex(hex);
        let mut cursor = Cursor::new(data.as_slice());
        let resp = MetadataResponse::read_versioned(&mut cursor, ApiVersion(Int16(v))).unwrap();
        assert_eq!(
            cursor.position() as usize,
            data.len(),
            "v{v}: trailing bytes"
        );
        resp
    }

    #[test]
    fn test_decode_kafka_responses_all_versions() {
        for &(v, hex) in RESPONSES {
            let resp = decode(v, hex);
            assert_eq!(resp.throttle_time_ms, (v >= 3).then_some(Int32(7)), "v{v}");
            assert_eq!(
                resp.brokers,
                vec![MetadataResponseBroker {
                    node_id: Int32(1),
                    host: String_("h".to_string()),
                    port: Int32(9092),
                    rack: (v >= 1).then(|| NullableString(Some("r".to_string()))),
                }],
                "v{v}"
            );
            assert_eq!(
                resp.cluster_id,
                (v >= 2).then(|| NullableString(Some("c".to_string()))),
                "v{v}"
            );
            assert_eq!(resp.controller_id, (v >= 1).then_some(Int32(1)), "v{v}");
            assert_eq!(
                resp.topics,
                vec![MetadataResponseTopic {
                    error: None,
                    name: String_("t".to_string()),
                    topic_id: (v >= 10).then_some(Uuid(TOPIC_ID)),
                    is_internal: (v >= 1).then_some(Boolean(false)),
                    partitions: vec![MetadataResponsePartition {
                        error: None,
                        partition_index: Int32(0),
                        leader_id: Int32(1),
                        replica_nodes: Array(Some(vec![Int32(1)])),
                        isr_nodes: Array(Some(vec![Int32(1)])),
                    }],
                }],
                "v{v}"
            );
        }
    }

    #[test]
    fn test_decode_v4_and_v12() {
        let v4 = decode(4, RESPONSES[4].1);
        assert_eq!(v4.topics[0].topic_id, None);
        assert_eq!(v4.topics[0].name.0, "t");

        let v12 = decode(12, RESPONSES[12].1);
        assert_eq!(v12.topics[0].topic_id, Some(Uuid(TOPIC_ID)));
        assert_eq!(v12.topics[0].name.0, "t");
        assert_eq!(v12.topics[0].partitions[0].leader_id, Int32(1));
    }

    #[test]
    fn test_decode_truncated_v12_fails() {
        let data = unhex(RESPONSES[12].1);
        for len in 0..data.len() {
            let mut cursor = Cursor::new(&data[..len]);
            assert!(MetadataResponse::read_versioned(&mut cursor, ApiVersion(Int16(12))).is_err());
        }
    }

    #[test]
    fn test_decode_v12_null_name_and_zero_id() {
        // throttle 0, no brokers, null cluster id, controller -1, one topic: error 3 (UNKNOWN_TOPIC_OR_PARTITION),
        // null name, zero id, not internal, no partitions, authorized ops -2^31, no tagged fields.
        let mut data = vec![0, 0, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 2, 0, 3, 0];
        data.extend_from_slice(&[0; 16]);
        data.extend_from_slice(&[0, 1, 0x80, 0, 0, 0, 0, 0]);
        let mut cursor = Cursor::new(data.as_slice());
        let resp = MetadataResponse::read_versioned(&mut cursor, ApiVersion(Int16(12))).unwrap();
        assert_eq!(cursor.position() as usize, data.len());
        assert_eq!(resp.topics.len(), 1);
        assert_eq!(resp.topics[0].name.0, "");
        assert_eq!(resp.topics[0].topic_id, Some(Uuid([0; 16])));
        assert_eq!(resp.topics[0].error, Some(Error::UnknownTopicOrPartition));
    }

    #[test]
    fn test_encode_requests_like_kafka() {
        for &(v, hex) in REQUESTS {
            let req = MetadataRequest {
                topics: Some(vec![MetadataRequestTopic {
                    name: String_("t".to_string()),
                }]),
                allow_auto_topic_creation: None,
            };
            let mut buf = Vec::new();
            req.write_versioned(&mut buf, ApiVersion(Int16(v))).unwrap();
            assert_eq!(buf, unhex(hex), "v{v}");
        }
        for &(v, hex) in REQUESTS_ALL {
            let req = MetadataRequest {
                topics: None,
                allow_auto_topic_creation: None,
            };
            let mut buf = Vec::new();
            req.write_versioned(&mut buf, ApiVersion(Int16(v))).unwrap();
            assert_eq!(buf, unhex(hex), "v{v}");
        }
    }
}
