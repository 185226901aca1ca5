//! Retrying API calls that failed in a way that may pass: conflicts, throttling, server
//! errors and lost connections.

use kube::Error as KubeError;

use crate::error::K8sError;
use hostledger_model::backoff::Backoff;

/// Whether an API error is worth retrying.
pub fn is_transient(error: &KubeError) -> bool {
    match error {
        KubeError::Api(status) => matches!(status.code, 409 | 429 | 500..=599),
        KubeError::HyperError(_) | KubeError::Service(_) | KubeError::ReadEvents(_) => true,
        _ => false,
    }
}

/// Runs `op` until it succeeds or fails with a non-transient error, waiting as
/// [`Backoff`] says between attempts. Returns the result and the number of attempts.
pub async fn retry<T, F, Fut>(action: &str, mut op: F) -> Result<(T, u64), K8sError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, KubeError>>,
{
    let mut backoff = Backoff::default();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match op().await {
            Ok(value) => return Ok((value, attempts)),
            Err(error) if is_transient(&error) => {
                let delay = backoff.next_delay();
                tracing::warn!(%error, attempt = attempts, "could not {action}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
            }
            Err(error) => return Err(K8sError::api(action, error)),
        }
    }
}
