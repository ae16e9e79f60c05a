//! S3's endpoint rules, run once per bucket instead of twice per request.
//!
//! The SDK resolves the endpoint of every request from its parameters (bucket, region, endpoint
//! URL, path style, ...) through S3's rules engine, once to choose the auth scheme and once to
//! address the request, and remembers only the last answer for parameters that are equal *with
//! the key*: every PutObject has a key of its own, so the rules ran twice per upload. The rules
//! never read the key, the prefix or the copy source (they are passed for other services'
//! rules), so [`Endpoints`] remembers the answer for everything else and hands the same endpoint,
//! signing properties included (signing name, region, no double encoding), to every request of
//! the bucket. Nothing is computed here: a miss asks the SDK's own rules.
//!
//! What the rules said of a bucket's objects is also written in a [`Routes`] book, where the
//! direct PutObject ([`super::direct`]) finds where to send an upload and how to sign it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_sdk_s3::config::endpoint::{DefaultResolver, EndpointFuture, Params, ResolveEndpoint};
use aws_smithy_types::Document;
use aws_smithy_types::endpoint::Endpoint;

/// The SDK's endpoint rules, with their last answer remembered whatever the request's key.
#[derive(Debug, Default)]
pub(super) struct Endpoints {
    rules: DefaultResolver,
    last: RwLock<Option<(Params, Endpoint)>>,
    routes: Arc<Routes>,
}

impl Endpoints {
    /// The rules, writing what they say of each bucket's objects in `routes`.
    pub(super) fn writing_to(routes: Arc<Routes>) -> Endpoints {
        Endpoints { routes, ..Endpoints::default() }
    }
}

impl ResolveEndpoint for Endpoints {
    fn resolve_endpoint<'a>(&'a self, params: &'a Params) -> EndpointFuture<'a> {
        if let Some((seen, endpoint)) = &*self.last.read().unwrap_or_else(|e| e.into_inner())
            && same_but_key(seen, params)
        {
            return EndpointFuture::ready(Ok(endpoint.clone()));
        }
        EndpointFuture::new(async move {
            let endpoint = self.rules.resolve_endpoint(params).await?;
            self.routes.learn(params, &endpoint);
            *self.last.write().unwrap_or_else(|e| e.into_inner()) = Some((params.clone(), endpoint.clone()));
            Ok(endpoint)
        })
    }
}

/// Where the objects of each bucket are sent, and how a request to them is signed: what the SDK's
/// rules said for a request on an object (not a bucket's configuration, an Object Lambda or a
/// directory bucket's control plane), kept for the direct PutObject.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    buckets: RwLock<HashMap<String, Option<Arc<Route>>>>,
}

/// An object's endpoint, without the key, and its SigV4 scope.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Route {
    /// The endpoint's URL with no trailing `/`: `https://site.s3.eu-west-1.amazonaws.com`, or
    /// `http://127.0.0.1:9000/site` path-style. The key's path is appended to it.
    pub base: String,
    pub signing_region: String,
    pub signing_name: String,
}

impl Routes {
    /// The route to `bucket`'s objects, once the rules have run for one of its requests, unless
    /// they gave what only the SDK sends (another signature than SigV4, headers of the endpoint's
    /// own).
    pub(crate) fn get(&self, bucket: &str) -> Option<Arc<Route>> {
        self.buckets.read().unwrap_or_else(|e| e.into_inner()).get(bucket).cloned().flatten()
    }

    fn learn(&self, params: &Params, endpoint: &Endpoint) {
        let on_objects = params.use_object_lambda_endpoint() != Some(true)
            && params.use_s3_express_control_endpoint() != Some(true)
            && params.disable_access_points() != Some(true);
        if let (true, Some(bucket)) = (on_objects, params.bucket()) {
            let route = Route::of(endpoint).map(Arc::new);
            self.buckets.write().unwrap_or_else(|e| e.into_inner()).insert(bucket.to_owned(), route);
        }
    }
}

impl Route {
    /// The route of a plain SigV4 endpoint; `None` for anything else.
    fn of(endpoint: &Endpoint) -> Option<Route> {
        let scheme = endpoint.auth_schemes().first()?;
        let text = |name| match scheme.get(name) {
            Some(Document::String(value)) => Some(value.clone()),
            _ => None,
        };
        let single_encoding = matches!(scheme.get("disableDoubleEncoding"), Some(Document::Bool(true)));
        if scheme.name() != "sigv4" || !single_encoding || endpoint.headers().next().is_some() {
            return None;
        }
        Some(Route {
            base: endpoint.url().trim_end_matches('/').to_owned(),
            signing_region: text("signingRegion")?,
            signing_name: text("signingName")?,
        })
    }
}

/// Whether the rules give `a` and `b` the same endpoint: every parameter they read is equal.
/// [`PARAMETERS`] lists them, and a test fails when the SDK adds one this does not compare.
fn same_but_key(a: &Params, b: &Params) -> bool {
    a.bucket() == b.bucket()
        && a.region() == b.region()
        && a.endpoint() == b.endpoint()
        && a.use_fips() == b.use_fips()
        && a.use_dual_stack() == b.use_dual_stack()
        && a.force_path_style() == b.force_path_style()
        && a.accelerate() == b.accelerate()
        && a.use_global_endpoint() == b.use_global_endpoint()
        && a.use_object_lambda_endpoint() == b.use_object_lambda_endpoint()
        && a.disable_access_points() == b.disable_access_points()
        && a.disable_multi_region_access_points() == b.disable_multi_region_access_points()
        && a.use_arn_region() == b.use_arn_region()
        && a.use_s3_express_control_endpoint() == b.use_s3_express_control_endpoint()
        && a.disable_s3_express_session_auth() == b.disable_s3_express_session_auth()
}

/// The parameters [`same_but_key`] compares, and those the rules never read.
#[cfg(test)]
const PARAMETERS: [&str; 17] = [
    "bucket",
    "region",
    "endpoint",
    "use_fips",
    "use_dual_stack",
    "force_path_style",
    "accelerate",
    "use_global_endpoint",
    "use_object_lambda_endpoint",
    "disable_access_points",
    "disable_multi_region_access_points",
    "use_arn_region",
    "use_s3_express_control_endpoint",
    "disable_s3_express_session_auth",
    // Never read by S3's rules.
    "key",
    "prefix",
    "copy_source",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn params(bucket: &str, key: &str) -> Params {
        Params::builder()
            .bucket(bucket)
            .key(key)
            .region("eu-west-1")
            .endpoint("http://127.0.0.1:9000")
            .force_path_style(true)
            .build()
            .unwrap()
    }

    fn resolve(endpoints: &Endpoints, params: &Params) -> Endpoint {
        futures_lite(endpoints.resolve_endpoint(params)).unwrap()
    }

    /// The endpoint futures here are always ready: no runtime needed.
    fn futures_lite<T>(future: impl std::future::Future<Output = T>) -> T {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("an endpoint future was not ready"),
        }
    }

    #[test]
    fn every_key_of_a_bucket_gets_the_endpoint_the_sdk_rules_give_it() {
        let endpoints = Endpoints::default();
        let rules = DefaultResolver::new();
        for (bucket, key) in [("site", "a.html"), ("site", "b/c d+é.html"), ("other", "a.html"), ("site", "z")] {
            let p = params(bucket, key);
            let ours = resolve(&endpoints, &p);
            let theirs = futures_lite(rules.resolve_endpoint(&p)).unwrap();
            assert_eq!(ours, theirs, "{bucket}/{key}");
            assert_eq!(ours.url(), format!("http://127.0.0.1:9000/{bucket}"));
        }
    }

    #[test]
    fn the_signing_properties_are_kept() {
        let endpoint = resolve(&Endpoints::default(), &params("site", "k"));
        let schemes = format!("{:?}", endpoint.auth_schemes());
        for property in ["sigv4", "signingName", "\"s3\"", "eu-west-1", "disableDoubleEncoding"] {
            assert!(schemes.contains(property), "{property} missing from {schemes}");
        }
    }

    #[test]
    fn a_buckets_route_is_what_the_rules_gave_its_objects() {
        let routes = Arc::new(Routes::default());
        let endpoints = Endpoints::writing_to(routes.clone());
        assert_eq!(routes.get("site"), None, "nothing is known before the rules ran");
        resolve(&endpoints, &params("site", "a.html"));
        let route = routes.get("site").expect("a SigV4 route");
        assert_eq!(
            *route,
            Route {
                base: "http://127.0.0.1:9000/site".into(),
                signing_region: "eu-west-1".into(),
                signing_name: "s3".into()
            }
        );
        let aws = Params::builder().bucket("site").region("eu-west-1").build().unwrap();
        let endpoint = futures_lite(DefaultResolver::new().resolve_endpoint(&aws)).unwrap();
        assert_eq!(Route::of(&endpoint).unwrap().base, "https://site.s3.eu-west-1.amazonaws.com");
        // A directory bucket is signed with its own session scheme: only the SDK sends to it.
        let express = Params::builder().bucket("site--euw1-az1--x-s3").region("eu-west-1").build().unwrap();
        let endpoint = futures_lite(DefaultResolver::new().resolve_endpoint(&express)).unwrap();
        assert_eq!(Route::of(&endpoint), None, "{:?}", endpoint.auth_schemes());
    }

    #[test]
    fn every_parameter_of_the_sdk_is_compared_or_known_to_be_unread() {
        // A parameter the SDK adds would otherwise be ignored by the comparison: name it there.
        let shown = format!("{:?}", params("site", "k"));
        let fields: Vec<&str> = shown
            .split(['{', ','])
            .skip(1)
            .filter_map(|field| field.split(':').next())
            .map(str::trim)
            .filter(|name| !name.is_empty() && !name.starts_with('}'))
            .collect();
        let mut known = PARAMETERS.to_vec();
        known.sort_unstable();
        let mut fields = fields;
        fields.sort_unstable();
        assert_eq!(fields, known, "{shown}");
    }
}
