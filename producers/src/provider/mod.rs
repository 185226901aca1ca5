//! Providers: where hosts come from. A provider returns a complete listing or an error; a
//! failed, timed-out or partial listing must never look like an empty one.

pub mod aws;
pub mod dcexport;
pub mod exec;

use std::future::Future;
use std::pin::Pin;

use crate::diff::Listing;

/// Why a listing could not be taken. Nothing is published for a failed listing.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be read at all (file missing, endpoint down, ...).
    #[error("{provider}: cannot list hosts: {reason}")]
    Unavailable {
        /// Provider instance name.
        provider: String,
        /// What went wrong.
        reason: String,
    },
    /// The provider answered with something that cannot be trusted as a listing.
    #[error("{provider}: listing rejected: {reason}")]
    Rejected {
        /// Provider instance name.
        provider: String,
        /// Why.
        reason: String,
    },
}

/// A boxed future of a listing.
pub type ListingFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Listing, ProviderError>> + Send + 'a>>;

/// A source of host listings.
pub trait Provider: Send {
    /// Instance name, unique among a fetcher's providers; it is the `source` of every event
    /// this provider produces.
    fn name(&self) -> &str;
    /// Provider kind written into events (`dc`, `aws`, `exec:NAME`).
    fn kind(&self) -> &str;
    /// Takes one complete listing.
    fn list(&mut self) -> ListingFuture<'_>;
}
