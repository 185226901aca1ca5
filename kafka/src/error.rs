//! Kafka errors, each with how to handle it.

use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};

/// How a caller should react to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retry with backoff; do not advance any offset or state.
    Transient,
    /// The message can never be processed: dead-letter it, count it, move on.
    Poison,
    /// Stop with a clear message: configuration or authentication is wrong.
    Fatal,
}

/// What went wrong talking to Kafka.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The settings are invalid.
    #[error("invalid Kafka settings: {0}")]
    Config(String),
    /// A topic hostledger needs does not exist.
    #[error(
        "Kafka topic {topic:?} does not exist on {bootstrap}; create it (scripts/stack up does, or `hostledger topics create`)"
    )]
    MissingTopic {
        /// The topic.
        topic: String,
        /// Where we looked.
        bootstrap: String,
    },
    /// The brokers could not be reached or refused us.
    #[error("cannot connect to Kafka at {bootstrap}: {detail}")]
    Connect {
        /// Where we tried.
        bootstrap: String,
        /// What librdkafka said, and a hint.
        detail: String,
    },
    /// A client operation failed.
    #[error("Kafka: could not {action}: {source}")]
    Client {
        /// What we were doing ("create the producer", "commit offsets", ...).
        action: String,
        /// The client library's error.
        #[source]
        source: RdError,
    },
    /// The brokers' authorizer refused this client's identity an operation.
    #[error(
        "Kafka refused to let {} {action}: {source}. Missing: {}. {} An administrator grants an \
         identity what its role needs with `hostledger topics grant ROLE --principal User:NAME` \
         (docs/operations.md, Kafka identities)",
        refused_who(.refusal.principal.as_deref()),
        .refusal.missing,
        refused_note(.refusal.principal.as_deref())
    )]
    Refused {
        /// What we were doing ("initialise transactions for hostledger-fetcher-eu", ...).
        action: String,
        /// The client library's error.
        #[source]
        source: RdError,
        /// What is missing, and who was refused.
        refusal: Box<Refusal>,
    },
    /// A certificate could not be renewed (the endpoint unreachable, or it refused).
    #[error("{0}")]
    Renewal(String),
    /// An administrative request (ACLs) failed.
    #[error("Kafka: {0}")]
    Admin(String),
    /// An admin operation on one topic failed.
    #[error("Kafka: could not create topic {topic:?}: {code}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        code: RDKafkaErrorCode,
    },
}

const HOW_IDENTIFIED: &str = "This command authenticates with the client certificate of \
     --kafka-cert, kafka.cert_file or $HOSTLEDGER_KAFKA_CERT_FILE; the brokers name it by its common name.";

/// Why the brokers refused (boxed in [`KafkaError::Refused`], so errors stay small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Which permission is missing.
    pub missing: &'static str,
    /// The principal refused, as [`crate::KafkaClients::principal`] names it, where known.
    pub principal: Option<String>,
}

impl Refusal {
    /// A refusal for want of `missing`, of a principal not known here.
    pub fn of(missing: &'static str) -> Box<Self> {
        Box::new(Refusal {
            missing,
            principal: None,
        })
    }
}

fn refused_who(identity: Option<&str>) -> &str {
    identity.unwrap_or("this client")
}

fn refused_note(identity: Option<&str>) -> String {
    match identity {
        Some(_) => HOW_IDENTIFIED.to_owned(),
        None => format!(
            "The identity refused is this command's client certificate (without one the brokers \
             see an anonymous client, allowed nothing). {HOW_IDENTIFIED}"
        ),
    }
}

impl KafkaError {
    /// Wraps a client error with what we were doing.
    pub fn client(action: impl Into<String>, source: RdError) -> Self {
        let action = action.into();
        match source.rdkafka_error_code().and_then(missing_permission) {
            Some(missing) => KafkaError::Refused {
                action,
                source,
                refusal: Refusal::of(missing),
            },
            None => KafkaError::Client { action, source },
        }
    }

    /// Names the principal of a refusal that does not name one yet (`principal` as
    /// [`crate::KafkaClients::principal`] gives it); other errors are returned as they are.
    #[must_use]
    pub fn refused_as(mut self, principal: &str) -> Self {
        if let KafkaError::Refused { refusal, .. } = &mut self
            && refusal.principal.is_none()
        {
            refusal.principal = Some(principal.to_owned());
        }
        self
    }

    /// How to handle this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            KafkaError::Config(_)
            | KafkaError::MissingTopic { .. }
            | KafkaError::CreateTopic { .. }
            | KafkaError::Connect { .. }
            | KafkaError::Admin(_) => ErrorClass::Fatal,
            KafkaError::Renewal(_) => ErrorClass::Transient,
            KafkaError::Client { source, .. } => classify(source),
            KafkaError::Refused { .. } => ErrorClass::Fatal,
        }
    }
}

/// For an authorization failure: which permission is missing.
pub(crate) fn missing_permission(code: RDKafkaErrorCode) -> Option<&'static str> {
    use RDKafkaErrorCode as C;
    Some(match code {
        C::TopicAuthorizationFailed => {
            "the identity has no ACL for this on the topic (fetchers may write the events topic but not read it; readers may only read)"
        }
        C::GroupAuthorizationFailed => "the identity has no ACL for the consumer group",
        C::TransactionalIdAuthorizationFailed => {
            "the identity may not publish as this source: a fetcher identity of scope S publishes only as sources whose \
             names start with S (transactional ids hostledger-fetcher-S*)"
        }
        C::ClusterAuthorizationFailed => {
            "this needs permission on the cluster itself, which only administrators have"
        }
        _ => return None,
    })
}

/// Classifies a client library error.
pub fn classify(error: &RdError) -> ErrorClass {
    use RDKafkaErrorCode as C;
    if let RdError::Transaction(e) = error {
        if e.is_fatal() {
            return ErrorClass::Fatal;
        }
        return ErrorClass::Transient;
    }
    if matches!(
        error,
        RdError::ClientConfig(..) | RdError::ClientCreation(_) | RdError::Subscription(_)
    ) {
        return ErrorClass::Fatal;
    }
    match error.rdkafka_error_code() {
        Some(
            C::SaslAuthenticationFailed
            | C::Authentication
            | C::SSL
            | C::TopicAuthorizationFailed
            | C::GroupAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed
            | C::UnsupportedSASLMechanism
            | C::ProducerFenced
            | C::InvalidProducerEpoch
            | C::FencedInstanceId
            | C::Fatal,
        ) => ErrorClass::Fatal,
        Some(C::MessageSizeTooLarge | C::InvalidMessage | C::InvalidRecord) => ErrorClass::Poison,
        _ => ErrorClass::Transient,
    }
}
