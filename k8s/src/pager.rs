//! Listing page by page over `continue` tokens: the one loop every listing goes through.

use std::future::Future;

use kube::Resource;
use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;

use crate::error::K8sError;

/// Objects per page when a caller does not say.
pub const PAGE_SIZE: u32 = 500;

/// Calls `page` with `params` and then with each `continue` token it returns, until the
/// last page; returns what every call returned, in order.
pub async fn paged<T, F, Fut>(mut params: ListParams, mut page: F) -> Result<Vec<T>, K8sError>
where
    F: FnMut(ListParams) -> Fut,
    Fut: Future<Output = Result<(T, Option<String>), K8sError>>,
{
    if params.limit.is_none() {
        params = params.limit(PAGE_SIZE);
    }
    let mut out = Vec::new();
    loop {
        let (items, next) = page(params.clone()).await?;
        out.push(items);
        match next {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(out),
        }
    }
}

/// Every object of `api` matching `params`. `what` names them in errors (`HostHistory`).
pub async fn list_all<K>(api: &Api<K>, params: ListParams, what: &str) -> Result<Vec<K>, K8sError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    list_each(api, params, what, |api, p| async move {
        let list = api.list(&p).await?;
        Ok((list.items, list.metadata.continue_))
    })
    .await
}

/// The names of every object of `api` matching `params` (metadata only).
pub async fn list_names<K>(
    api: &Api<K>,
    params: ListParams,
    what: &str,
) -> Result<Vec<String>, K8sError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    list_each(api, params, what, |api, p| async move {
        let list = api.list_metadata(&p).await?;
        let names = list.items.into_iter().filter_map(|m| m.metadata.name);
        Ok((names.collect(), list.metadata.continue_))
    })
    .await
}

/// Pages of `api` through `page` (one list call), flattened, with errors said in `api`'s
/// namespace.
async fn list_each<'a, K, T, F, Fut>(
    api: &'a Api<K>,
    params: ListParams,
    what: &str,
    page: F,
) -> Result<Vec<T>, K8sError>
where
    K: Resource,
    F: Fn(&'a Api<K>, ListParams) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), kube::Error>>,
{
    let namespace = api.namespace().unwrap_or_default();
    let pages = paged(params, |p| {
        let call = page(api, p);
        async move {
            call.await
                .map_err(|e| K8sError::in_namespace(format!("list {what}"), namespace, e))
        }
    })
    .await?;
    Ok(pages.into_iter().flatten().collect())
}
