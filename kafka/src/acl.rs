//! Kafka authorization: the ACLs each hostledger identity needs, and nothing more, and
//! creating them on the brokers.
//!
//! The brokers authorize by principal (with mutual TLS, the client certificate's common name
//! once the brokers map it: `ssl.principal.mapping.rules`). Per identity:
//!
//! | identity | may |
//! |---|---|
//! | fetcher of scope S | write (not read) the events topic; read and write the fetcher-state topic; transactional ids `hostledger-fetcher-S…`, i.e. publish only as sources whose names start with S |
//! | projector | read the events topic and write lock facts to it; write the dead-letter topic; its consumer group |
//! | reader | read the events and dead-letter topics; consumer groups `hostledger-reader-…` |
//! | backfill of scope S | a fetcher's, and read the events topic (archives are checked against the log) |
//!
//! Kafka ACLs are per topic, not per key: fetchers sharing one fetcher-state topic could
//! overwrite each other's entries; give each scope a topic of its own
//! (`kafka.topics.fetcher_state`) where scopes do not trust each other.
//!
//! rdkafka has no safe binding for librdkafka's ACL calls, so [`KafkaClients::create_acls`]
//! and [`KafkaClients::describe_acls`] call them through `rdkafka-sys`, in the one place of
//! the workspace that allows it.

use std::ffi::{CStr, CString};
use std::fmt;
use std::time::Duration;

use rdkafka::client::Client;
use rdkafka::types::RDKafkaErrorCode;

use crate::client::{KafkaClients, KafkaContext};
use crate::error::KafkaError;
use crate::settings::Topics;

/// What an ACL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AclResource {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// A producer's transactional id.
    TransactionalId,
}

/// How an ACL's resource name matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AclPattern {
    /// Exactly this name.
    Literal,
    /// Every name starting with this one.
    Prefixed,
}

/// What an ACL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AclOperation {
    /// Consume (topics), join and commit (groups).
    Read,
    /// Produce (topics), use in transactions (transactional ids).
    Write,
    /// Metadata, offsets, transaction state.
    Describe,
}

/// One allow rule: `principal` may `operation` on the resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acl {
    /// The kind of resource.
    pub resource: AclResource,
    /// How `name` matches.
    pub pattern: AclPattern,
    /// The resource's name (or prefix).
    pub name: String,
    /// The principal allowed, e.g. `User:hostledger-fetcher-eu`.
    pub principal: String,
    /// What it may do.
    pub operation: AclOperation,
}

impl fmt::Display for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resource = match self.resource {
            AclResource::Topic => "topic",
            AclResource::Group => "group",
            AclResource::TransactionalId => "transactional id",
        };
        let operation = match self.operation {
            AclOperation::Read => "Read",
            AclOperation::Write => "Write",
            AclOperation::Describe => "Describe",
        };
        let pattern = match self.pattern {
            AclPattern::Literal => "",
            AclPattern::Prefixed => "*",
        };
        write!(
            f,
            "allow {} {operation} on {resource} {}{pattern}",
            self.principal, self.name
        )
    }
}

/// A hostledger identity on the Kafka side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaIdentity {
    /// A fetcher (or backfill) publishing as sources whose names start with `scope`.
    Fetcher {
        /// The region or provider scope, e.g. `aws-eu-west-1` or `dc`.
        scope: String,
    },
    /// The projector, consuming in `group`.
    Projector {
        /// Its consumer group.
        group: String,
    },
    /// Readers of the log: `--source log`, the history server, streaming consumers.
    Reader,
    /// `hostledger backfill` of sources named `scope`...: a fetcher's ACLs, and reading the
    /// events topic (the archive is checked against what the log already holds).
    Backfill {
        /// As for [`KafkaIdentity::Fetcher`].
        scope: String,
    },
}

/// The prefix of the consumer groups a reader may use (`hostledger-reader-billing`, ...).
pub const READER_GROUP_PREFIX: &str = "hostledger-reader-";

/// The consumer group of readers that assign partitions themselves and commit nothing (state
/// restore, `--source log`, the history server): librdkafka assigns only with a group and
/// looks up its coordinator, so every identity may describe this group, and nothing else
/// with it.
pub const ASSIGN_ONLY_GROUP: &str = "hostledger-reader-assign-only";

/// The prefix of every fetcher's transactional id; the source's name follows it.
pub const FETCHER_TRANSACTIONAL_ID_PREFIX: &str = "hostledger-fetcher-";

impl KafkaIdentity {
    /// The ACLs `principal` needs to act as this identity on `topics`: least privilege.
    pub fn acls(&self, principal: &str, topics: &Topics) -> Vec<Acl> {
        let acl = |resource, pattern, name: &str, operation| Acl {
            resource,
            pattern,
            name: name.to_owned(),
            principal: principal.to_owned(),
            operation,
        };
        // `principal` may do each of `operations` on one resource.
        let allow = |resource, pattern, name: &str, operations: &[AclOperation]| {
            operations
                .iter()
                .map(|&operation| acl(resource, pattern, name, operation))
                .collect::<Vec<_>>()
        };
        let topic = |name: &str, operations: &[AclOperation]| {
            allow(AclResource::Topic, AclPattern::Literal, name, operations)
        };
        use AclOperation::{Describe, Read, Write};
        let mut acls = match self {
            KafkaIdentity::Fetcher { scope } => {
                let id = format!("{FETCHER_TRANSACTIONAL_ID_PREFIX}{scope}");
                let mut acls = topic(&topics.events, &[Write, Describe]);
                acls.extend(topic(&topics.fetcher_state, &[Read, Write, Describe]));
                acls.extend(allow(
                    AclResource::TransactionalId,
                    AclPattern::Prefixed,
                    &id,
                    &[Write, Describe],
                ));
                acls
            }
            KafkaIdentity::Projector { group } => {
                // Lock facts (HostLocked/HostUnlocked) are the projector's to record: Write.
                let mut acls = topic(&topics.events, &[Read, Describe, Write]);
                acls.extend(topic(&topics.dead_letter, &[Write, Describe]));
                acls.extend(allow(
                    AclResource::Group,
                    AclPattern::Literal,
                    group,
                    &[Read, Describe],
                ));
                acls
            }
            KafkaIdentity::Backfill { scope } => {
                let mut acls = KafkaIdentity::Fetcher {
                    scope: scope.clone(),
                }
                .acls(principal, topics);
                acls.extend(topic(&topics.events, &[Read]));
                acls
            }
            KafkaIdentity::Reader => {
                let mut acls = topic(&topics.events, &[Read, Describe]);
                acls.extend(topic(&topics.dead_letter, &[Read, Describe]));
                // Streaming consumers keep their place in groups of their own.
                acls.extend(allow(
                    AclResource::Group,
                    AclPattern::Prefixed,
                    READER_GROUP_PREFIX,
                    &[Read, Describe],
                ));
                acls
            }
        };
        acls.push(acl(
            AclResource::Group,
            AclPattern::Literal,
            ASSIGN_ONLY_GROUP,
            Describe,
        ));
        acls.sort();
        acls.dedup();
        acls
    }
}

/// How long the brokers may take to answer a request to create ACLs.
const ACL_TIMEOUT: Duration = Duration::from_secs(30);

impl KafkaClients {
    /// Creates `acls` on the brokers (the settings' principal must be allowed to alter the
    /// cluster's ACLs, e.g. a super user). Existing identical ACLs are left as they are.
    pub fn create_acls(&self, acls: &[Acl]) -> Result<(), KafkaError> {
        if acls.is_empty() {
            return Ok(());
        }
        let admin = self.admin_client()?;
        native::create_acls(admin.inner(), acls, ACL_TIMEOUT)
            .map_err(|e| e.refused_as(&self.principal()))
    }

    /// Every allow rule on the brokers that hostledger's roles use (Read, Write, Describe on
    /// topics, groups and transactional ids), sorted.
    pub fn describe_acls(&self) -> Result<Vec<Acl>, KafkaError> {
        let admin = self.admin_client()?;
        native::describe_acls(admin.inner(), ACL_TIMEOUT)
            .map_err(|e| e.refused_as(&self.principal()))
    }

    /// [`KafkaClients::describe_acls`] without blocking the calling task.
    pub async fn describe_acls_async(&self) -> Result<Vec<Acl>, KafkaError> {
        self.blocking(|k| k.describe_acls()).await
    }

    /// [`KafkaClients::create_acls`] without blocking the calling task.
    pub async fn create_acls_async(&self, acls: Vec<Acl>) -> Result<(), KafkaError> {
        self.blocking(move |k| k.create_acls(&acls)).await
    }
}

/// The error for a failed ACL request: the brokers' refusal as a [`KafkaError::Refused`]
/// (which says who may create ACLs), anything else with what the brokers or librdkafka said.
fn acl_error(what: String, code: Option<RDKafkaErrorCode>) -> KafkaError {
    let Some(code) = code else {
        return KafkaError::Admin(format!("could not create ACLs: {what}"));
    };
    match crate::error::missing_permission(code) {
        Some(missing) => KafkaError::Refused {
            action: "create ACLs".to_owned(),
            source: rdkafka::error::KafkaError::AdminOp(code),
            refusal: crate::error::Refusal::of(missing),
        },
        None if code == RDKafkaErrorCode::SecurityDisabled => KafkaError::Admin(format!(
            "could not create ACLs: the brokers run without an authorizer (set authorizer.class.name): {what}"
        )),
        None => KafkaError::Admin(format!("could not create ACLs: {what} ({code})")),
    }
}

#[allow(unsafe_code)]
mod native {
    //! librdkafka's CreateAcls, called directly. Every pointer made here is destroyed here.

    use super::*;
    use rdkafka_sys as sys;
    use std::os::raw::c_char;

    /// Owns what librdkafka allocated, destroying it on every path out.
    struct Owned<T> {
        ptr: *mut T,
        destroy: unsafe extern "C" fn(*mut T),
    }

    impl<T> Drop for Owned<T> {
        fn drop(&mut self) {
            if !self.ptr.is_null() {
                // SAFETY: `ptr` came from the librdkafka constructor matching `destroy` and is
                // destroyed once, here.
                unsafe { (self.destroy)(self.ptr) }
            }
        }
    }

    fn c_string(what: &str, value: &str) -> Result<CString, KafkaError> {
        CString::new(value)
            .map_err(|_| acl_error(format!("{what} {value:?} contains a NUL byte"), None))
    }

    /// Copies a C string librdkafka owns.
    fn text(ptr: *const c_char) -> String {
        if ptr.is_null() {
            return String::new();
        }
        // SAFETY: librdkafka returns NUL-terminated strings that live as long as the object
        // they came from, which outlives this call.
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    }

    fn binding(acl: &Acl) -> Result<Owned<sys::rd_kafka_AclBinding_t>, KafkaError> {
        use sys::rd_kafka_AclOperation_t as Op;
        use sys::rd_kafka_ResourcePatternType_t as Pattern;
        use sys::rd_kafka_ResourceType_t as Resource;
        let resource = match acl.resource {
            AclResource::Topic => Resource::RD_KAFKA_RESOURCE_TOPIC,
            AclResource::Group => Resource::RD_KAFKA_RESOURCE_GROUP,
            AclResource::TransactionalId => Resource::RD_KAFKA_RESOURCE_TRANSACTIONAL_ID,
        };
        let pattern = match acl.pattern {
            AclPattern::Literal => Pattern::RD_KAFKA_RESOURCE_PATTERN_LITERAL,
            AclPattern::Prefixed => Pattern::RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
        };
        let operation = match acl.operation {
            AclOperation::Read => Op::RD_KAFKA_ACL_OPERATION_READ,
            AclOperation::Write => Op::RD_KAFKA_ACL_OPERATION_WRITE,
            AclOperation::Describe => Op::RD_KAFKA_ACL_OPERATION_DESCRIBE,
        };
        let name = c_string("resource name", &acl.name)?;
        let principal = c_string("principal", &acl.principal)?;
        let host = c_string("host", "*")?;
        let mut errstr = [0 as c_char; 512];
        // SAFETY: the strings are valid NUL-terminated C strings for the duration of the
        // call (librdkafka copies them); errstr is a writable buffer of the size given.
        let ptr = unsafe {
            sys::rd_kafka_AclBinding_new(
                resource,
                name.as_ptr(),
                pattern,
                principal.as_ptr(),
                host.as_ptr(),
                operation,
                sys::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        if ptr.is_null() {
            return Err(acl_error(format!("{acl}: {}", text(errstr.as_ptr())), None));
        }
        Ok(Owned {
            ptr,
            destroy: sys::rd_kafka_AclBinding_destroy,
        })
    }

    /// Sends one admin request (`submit` gets the client, the options and the reply queue)
    /// and returns the brokers' answer, checked for a request-level error.
    fn request(
        client: &Client<KafkaContext>,
        op: sys::rd_kafka_admin_op_t,
        timeout: Duration,
        submit: impl FnOnce(
            *mut sys::rd_kafka_t,
            *mut sys::rd_kafka_AdminOptions_t,
            *mut sys::rd_kafka_queue_t,
        ),
    ) -> Result<Owned<sys::rd_kafka_event_t>, KafkaError> {
        let rk = client.native_ptr();
        // SAFETY: `rk` is a live client handle for the whole function (`client` is borrowed).
        let queue = Owned {
            ptr: unsafe { sys::rd_kafka_queue_new(rk) },
            destroy: sys::rd_kafka_queue_destroy,
        };
        // SAFETY: as above; the options are destroyed by `Owned`.
        let options = Owned {
            ptr: unsafe { sys::rd_kafka_AdminOptions_new(rk, op) },
            destroy: sys::rd_kafka_AdminOptions_destroy,
        };
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let mut errstr = [0 as c_char; 512];
        // SAFETY: `options` is live; errstr is a writable buffer of the size given.
        let err = unsafe {
            sys::rd_kafka_AdminOptions_set_request_timeout(
                options.ptr,
                timeout_ms,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        if err != sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(acl_error(text(errstr.as_ptr()), None));
        }
        submit(rk, options.ptr, queue.ptr);
        // SAFETY: the queue is live; the event returned is destroyed by `Owned`.
        let event = Owned {
            ptr: unsafe { sys::rd_kafka_queue_poll(queue.ptr, timeout_ms.saturating_add(5_000)) },
            destroy: sys::rd_kafka_event_destroy,
        };
        if event.ptr.is_null() {
            return Err(acl_error(
                format!("no answer from the brokers within {timeout:?}"),
                None,
            ));
        }
        // SAFETY: `event` is live.
        let err = unsafe { sys::rd_kafka_event_error(event.ptr) };
        if err != sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            // SAFETY: `event` is live; the string lives as long as it.
            let what = text(unsafe { sys::rd_kafka_event_error_string(event.ptr) });
            return Err(acl_error(what, Some(err.into())));
        }
        Ok(event)
    }

    pub(super) fn create_acls(
        client: &Client<KafkaContext>,
        acls: &[Acl],
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        let bindings = acls.iter().map(binding).collect::<Result<Vec<_>, _>>()?;
        let mut raw: Vec<*mut sys::rd_kafka_AclBinding_t> =
            bindings.iter().map(|b| b.ptr).collect();
        let event = request(
            client,
            sys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS,
            timeout,
            // SAFETY: the bindings stay alive until after the answer is read (librdkafka
            // copies them into the request); options and queue are live.
            |rk, options, queue| unsafe {
                sys::rd_kafka_CreateAcls(rk, raw.as_mut_ptr(), raw.len(), options, queue)
            },
        )?;
        // SAFETY: `event` is live and is a CreateAcls result (the only request on its queue).
        let result = unsafe { sys::rd_kafka_event_CreateAcls_result(event.ptr) };
        if result.is_null() {
            return Err(acl_error(
                "the brokers' answer was not a CreateAcls result".into(),
                None,
            ));
        }
        let mut count = 0usize;
        // SAFETY: `result` belongs to `event`, which is live; `count` is written.
        let results = unsafe { sys::rd_kafka_CreateAcls_result_acls(result, &mut count) };
        let mut refused = Vec::new();
        for i in 0..count {
            // SAFETY: `results` holds `count` pointers owned by the event.
            let item = unsafe { *results.add(i) };
            // SAFETY: `item` is a live acl result; its error (if any) lives as long as it.
            let error = unsafe { sys::rd_kafka_acl_result_error(item) };
            if !error.is_null() {
                // SAFETY: `error` is live (owned by the result).
                let code = unsafe { sys::rd_kafka_error_code(error) };
                // SAFETY: as above.
                let what = text(unsafe { sys::rd_kafka_error_string(error) });
                let acl = acls.get(i).map(ToString::to_string).unwrap_or_default();
                refused.push((format!("{acl}: {what}"), RDKafkaErrorCode::from(code)));
            }
        }
        drop(bindings);
        match refused.into_iter().next() {
            None => Ok(()),
            Some((what, code)) => Err(acl_error(what, Some(code))),
        }
    }

    pub(super) fn describe_acls(
        client: &Client<KafkaContext>,
        timeout: Duration,
    ) -> Result<Vec<Acl>, KafkaError> {
        use sys::rd_kafka_AclOperation_t as Op;
        use sys::rd_kafka_ResourcePatternType_t as Pattern;
        use sys::rd_kafka_ResourceType_t as Resource;
        let mut errstr = [0 as c_char; 512];
        // SAFETY: null strings match any; errstr is a writable buffer of the size given.
        let filter = Owned {
            ptr: unsafe {
                sys::rd_kafka_AclBindingFilter_new(
                    Resource::RD_KAFKA_RESOURCE_ANY,
                    std::ptr::null(),
                    Pattern::RD_KAFKA_RESOURCE_PATTERN_ANY,
                    std::ptr::null(),
                    std::ptr::null(),
                    Op::RD_KAFKA_ACL_OPERATION_ANY,
                    sys::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ANY,
                    errstr.as_mut_ptr(),
                    errstr.len(),
                )
            },
            destroy: sys::rd_kafka_AclBinding_destroy,
        };
        if filter.ptr.is_null() {
            return Err(acl_error(text(errstr.as_ptr()), None));
        }
        let event = request(
            client,
            sys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBEACLS,
            timeout,
            // SAFETY: the filter stays alive until after the answer is read.
            |rk, options, queue| unsafe {
                sys::rd_kafka_DescribeAcls(rk, filter.ptr, options, queue)
            },
        )?;
        // SAFETY: `event` is live and is a DescribeAcls result (the only request on its queue).
        let result = unsafe { sys::rd_kafka_event_DescribeAcls_result(event.ptr) };
        if result.is_null() {
            return Err(acl_error(
                "the brokers' answer was not a DescribeAcls result".into(),
                None,
            ));
        }
        let mut count = 0usize;
        // SAFETY: `result` belongs to `event`, which is live; `count` is written.
        let bindings = unsafe { sys::rd_kafka_DescribeAcls_result_acls(result, &mut count) };
        let mut acls = Vec::with_capacity(count);
        for i in 0..count {
            // SAFETY: `bindings` holds `count` pointers owned by the event.
            let b = unsafe { *bindings.add(i) };
            // SAFETY: `b` is a live binding for the rest of this iteration.
            let (resource, pattern, operation, permission) = unsafe {
                (
                    sys::rd_kafka_AclBinding_restype(b),
                    sys::rd_kafka_AclBinding_resource_pattern_type(b),
                    sys::rd_kafka_AclBinding_operation(b),
                    sys::rd_kafka_AclBinding_permission_type(b),
                )
            };
            let resource = match resource {
                Resource::RD_KAFKA_RESOURCE_TOPIC => AclResource::Topic,
                Resource::RD_KAFKA_RESOURCE_GROUP => AclResource::Group,
                Resource::RD_KAFKA_RESOURCE_TRANSACTIONAL_ID => AclResource::TransactionalId,
                _ => continue,
            };
            let pattern = match pattern {
                Pattern::RD_KAFKA_RESOURCE_PATTERN_LITERAL => AclPattern::Literal,
                Pattern::RD_KAFKA_RESOURCE_PATTERN_PREFIXED => AclPattern::Prefixed,
                _ => continue,
            };
            let operation = match operation {
                Op::RD_KAFKA_ACL_OPERATION_READ => AclOperation::Read,
                Op::RD_KAFKA_ACL_OPERATION_WRITE => AclOperation::Write,
                Op::RD_KAFKA_ACL_OPERATION_DESCRIBE => AclOperation::Describe,
                _ => continue,
            };
            if permission != sys::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW {
                continue;
            }
            acls.push(Acl {
                resource,
                pattern,
                // SAFETY: the strings live as long as the binding.
                name: text(unsafe { sys::rd_kafka_AclBinding_name(b) }),
                // SAFETY: as above.
                principal: text(unsafe { sys::rd_kafka_AclBinding_principal(b) }),
                operation,
            });
        }
        acls.sort();
        Ok(acls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(acls: &[Acl]) -> Vec<String> {
        acls.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_fetcher_writes_events_and_its_state_and_publishes_only_as_its_scope() {
        let topics = Topics::with_prefix("t");
        let acls = KafkaIdentity::Fetcher { scope: "eu".into() }.acls("User:f", &topics);
        let names = names(&acls);
        assert!(names.contains(&"allow User:f Write on topic t.host-events".to_owned()));
        assert!(!names.contains(&"allow User:f Read on topic t.host-events".to_owned()));
        assert!(names.contains(&"allow User:f Read on topic t.fetcher-state".to_owned()));
        assert!(
            names.contains(
                &"allow User:f Write on transactional id hostledger-fetcher-eu*".to_owned()
            )
        );
        assert!(
            acls.iter().all(|a| a.name != topics.dead_letter),
            "{names:?}"
        );
        assert!(
            acls.iter()
                .filter(|a| a.resource == AclResource::Group)
                .all(|a| a.name == ASSIGN_ONLY_GROUP && a.operation == AclOperation::Describe),
            "{names:?}"
        );
    }

    #[test]
    fn the_projector_reads_events_writes_dead_letters_and_owns_its_group() {
        let topics = Topics::with_prefix("t");
        let acls = KafkaIdentity::Projector { group: "g".into() }.acls("User:p", &topics);
        let names = names(&acls);
        assert!(names.contains(&"allow User:p Read on topic t.host-events".to_owned()));
        assert!(names.contains(&"allow User:p Write on topic t.host-events.dlq".to_owned()));
        assert!(names.contains(&"allow User:p Read on group g".to_owned()));
        assert!(
            acls.iter().all(|a| a.name != topics.fetcher_state),
            "{names:?}"
        );
        assert!(
            acls.iter()
                .all(|a| a.resource != AclResource::TransactionalId)
        );
    }

    #[test]
    fn a_backfill_is_a_fetcher_that_reads_the_events() {
        let topics = Topics::with_prefix("t");
        let fetcher = KafkaIdentity::Fetcher { scope: "eu".into() }.acls("User:b", &topics);
        let backfill = KafkaIdentity::Backfill { scope: "eu".into() }.acls("User:b", &topics);
        assert!(fetcher.iter().all(|a| backfill.contains(a)));
        assert_eq!(
            names(&backfill[..])
                .into_iter()
                .filter(|n| !names(&fetcher).contains(n))
                .collect::<Vec<_>>(),
            ["allow User:b Read on topic t.host-events"]
        );
    }

    #[test]
    fn a_reader_only_reads_and_describes() {
        let acls = KafkaIdentity::Reader.acls("User:r", &Topics::with_prefix("t"));
        assert!(
            acls.iter().all(|a| a.operation != AclOperation::Write),
            "{:?}",
            names(&acls)
        );
        let topics: Vec<_> = acls
            .iter()
            .filter(|a| a.resource == AclResource::Topic)
            .collect();
        assert_eq!(topics.len(), 4);
        assert!(
            acls.iter()
                .all(|a| a.resource != AclResource::TransactionalId)
        );
        assert!(
            acls.iter()
                .filter(|a| a.resource == AclResource::Group && a.name != ASSIGN_ONLY_GROUP)
                .all(|a| a.name == READER_GROUP_PREFIX && a.pattern == AclPattern::Prefixed)
        );
    }
}
