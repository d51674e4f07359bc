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
