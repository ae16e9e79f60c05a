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

use std::sync::RwLock;

use aws_sdk_s3::config::endpoint::{DefaultResolver, EndpointFuture, Params, ResolveEndpoint};
use aws_smithy_types::endpoint::Endpoint;

/// The SDK's endpoint rules, with their last answer remembered whatever the request's key.
#[derive(Debug, Default)]
pub(super) struct Endpoints {
    rules: DefaultResolver,
    last: RwLock<Option<(Params, Endpoint)>>,
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
            *self.last.write().unwrap_or_else(|e| e.into_inner()) = Some((params.clone(), endpoint.clone()));
            Ok(endpoint)
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
