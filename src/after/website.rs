//! After a run with `_redirects` (or `[redirects]`): the bucket's website routing rules, and what
//! the run did for the site's redirects, in the report.
//!
//! The routing rules are the `/prefix/*` rules S3 website hosting serves. When the site owns them
//! (`routing_rules = true`), this step reads the bucket's website configuration and, if its
//! routing rules are not the site's, writes it back with the site's rules, keeping its index and
//! error documents (PutBucketWebsite replaces the whole configuration). A bucket without a
//! website configuration is left alone and the run fails, saying so: turning website hosting on
//! is the owner's decision, not a side effect of a sync. With `--shard`, only shard 1 sets them.
//! A dry run reads the configuration and shows in the plan what it would set. The report gets
//! `redirect_objects` (redirect objects this run uploaded) and `routing_rules_set` (the rules
//! written, 0 when they were current).

use aws_sdk_s3::types::{Condition, Protocol, Redirect, RoutingRule as SdkRule, WebsiteConfiguration};
use serde_json::Value;

use super::{AfterError, AfterRun, Outcome, Said};
use crate::journal::Change;
use crate::keys::target::Target;
use crate::s3client::describe;
use crate::transform::redirects::{Replace, RoutingRule};

/// The site's redirects, after the sync.
pub struct Website {
    pub client: aws_sdk_s3::Client,
    pub target: Target,
    /// The keys of this run's redirect objects (relative to the prefix), sorted.
    pub objects: Vec<String>,
    /// The routing rules to set, when this run sets them.
    pub routing: Option<Vec<RoutingRule>>,
    /// The CloudFront Function's file and how many rules it holds, for the plan.
    pub function: Option<(String, usize)>,
}

#[async_trait::async_trait]
impl AfterRun for Website {
    async fn run(self: Box<Self>, outcome: &Outcome<'_>) -> Result<Said, AfterError> {
        let failure = AfterError::Website;
        let mut said = Said::default();
        said.fields.insert("redirect_objects".into(), Value::from(self.made(outcome).map_err(failure)?));
        if let Some((file, rules)) = &self.function {
            let verb = if outcome.dry_run { "would hold" } else { "holds" };
            said.plan.push(format!("cloudfront function {file} ({verb} {rules} rules)"));
        }
        if let Some(rules) = &self.routing
            && !outcome.stopped
        {
            let set = self.set_routing(rules, outcome.dry_run, &mut said.plan).await.map_err(failure)?;
            said.fields.insert("routing_rules_set".into(), Value::from(set));
        }
        Ok(said)
    }
}

impl Website {
    /// How many redirect objects the run uploaded: the record of changes and the keys, both in
    /// key order, walked together.
    fn made(&self, outcome: &Outcome<'_>) -> Result<u64, String> {
        if self.objects.is_empty() {
            return Ok(0);
        }
        let changes =
            outcome.applied.changes.sorted().map_err(|e| format!("cannot read the record of changes: {e}"))?;
        let mut keys = self.objects.iter().peekable();
        let mut made = 0;
        for record in changes {
            let record = record.map_err(|e| format!("cannot read the record of changes: {e}"))?;
            while keys.next_if(|k| k.as_str() < record.key.as_str()).is_some() {}
            if record.change == Change::Uploaded && keys.peek().is_some_and(|k| **k == record.key) {
                made += 1;
            }
        }
        Ok(made)
    }

    /// Makes the bucket's routing rules the site's; how many were written (0: they were).
    async fn set_routing(&self, rules: &[RoutingRule], dry_run: bool, plan: &mut Vec<String>) -> Result<u64, String> {
        let bucket = &self.target.bucket;
        let current = match self.client.get_bucket_website().bucket(bucket).send().await {
            Ok(current) => current,
            // AWS's answer, and Garage's (an empty 204).
            Err(e)
                if e.as_service_error().and_then(|s| s.meta().code()) == Some("NoSuchWebsiteConfiguration")
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 204) =>
            {
                return Err(no_website(bucket));
            }
            Err(e) => return Err(format!("GetBucketWebsite on {bucket}: {}", describe(&e))),
        };
        if current.redirect_all_requests_to().is_some() {
            return Err(format!("bucket {bucket} redirects every request elsewhere (RedirectAllRequestsTo)"));
        }
        let Some(index) = current.index_document().cloned() else { return Err(no_website(bucket)) };
        let wanted: Vec<SdkRule> = rules.iter().map(|r| self.sdk_rule(r)).collect();
        if current.routing_rules().iter().map(shape).eq(wanted.iter().map(shape)) {
            return Ok(0);
        }
        for (rule, sdk) in rules.iter().zip(&wanted) {
            let (prefix, to, code) = shape(sdk).into_shown();
            plan.push(format!("route {prefix}* -> {to} ({code}, from {})", rule.at));
        }
        if rules.is_empty() {
            plan.push(format!(
                "route (none: the {} routing rules of bucket {bucket} are removed)",
                current.routing_rules().len()
            ));
        }
        if !dry_run {
            let config = WebsiteConfiguration::builder()
                .index_document(index)
                .set_error_document(current.error_document().cloned())
                .set_routing_rules((!wanted.is_empty()).then_some(wanted))
                .build();
            let put = self.client.put_bucket_website().bucket(bucket).website_configuration(config).send().await;
            put.map_err(|e| format!("PutBucketWebsite on {bucket}: {}", describe(&e)))?;
        }
        Ok(rules.len() as u64)
    }

    fn sdk_rule(&self, rule: &RoutingRule) -> SdkRule {
        let mut redirect = Redirect::builder()
            .http_redirect_code(rule.code.to_string())
            .set_host_name(rule.host.clone())
            .set_protocol(rule.protocol.as_deref().map(Protocol::from));
        redirect = match &rule.replace {
            Replace::Prefix(prefix) => redirect.replace_key_prefix_with(prefix),
            Replace::Key(key) => redirect.replace_key_with(key),
        };
        let condition = Condition::builder().key_prefix_equals(self.target.key(&rule.prefix)).build();
        SdkRule::builder().condition(condition).redirect(redirect.build()).build()
    }
}

fn no_website(bucket: &str) -> String {
    format!(
        "bucket {bucket} has no website configuration (website hosting is off), so its routing rules cannot be \
         set: turn website hosting on (aws s3 website s3://{bucket} --index-document index.html), or set \
         routing_rules = false; sitesync sets only the routing rules"
    )
}

/// What a routing rule does, as the comparison sees it (servers may leave out empty fields).
#[derive(PartialEq, Eq)]
struct Shape<'a> {
    prefix: Option<&'a str>,
    error_code: Option<&'a str>,
    host: Option<&'a str>,
    protocol: Option<&'a str>,
    replace_prefix: Option<&'a str>,
    replace_key: Option<&'a str>,
    code: Option<&'a str>,
}

impl<'a> Shape<'a> {
    /// `(KeyPrefixEquals, where it goes, the status)`, for the plan.
    fn into_shown(self) -> (String, String, String) {
        let host = match (self.protocol, self.host) {
            (Some(protocol), Some(host)) => format!("{protocol}://{host}"),
            (None, Some(host)) => format!("//{host}"),
            _ => String::new(),
        };
        let to = match (self.replace_prefix, self.replace_key) {
            (Some(prefix), _) => format!("{host}/{prefix}:splat"),
            (None, Some(key)) => format!("{host}/{key}"),
            (None, None) => format!("{host}/"),
        };
        (self.prefix.unwrap_or_default().to_owned(), to, self.code.unwrap_or("301").to_owned())
    }
}

fn nonempty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

fn shape(rule: &SdkRule) -> Shape<'_> {
    let condition = rule.condition();
    let redirect = rule.redirect();
    Shape {
        prefix: condition.and_then(|c| c.key_prefix_equals()),
        error_code: condition.and_then(|c| c.http_error_code_returned_equals()),
        host: redirect.and_then(|r| nonempty(r.host_name())),
        protocol: redirect.and_then(|r| r.protocol()).map(|p| p.as_str()),
        replace_prefix: redirect.and_then(|r| r.replace_key_prefix_with()),
        replace_key: redirect.and_then(|r| r.replace_key_with()),
        code: redirect.and_then(|r| nonempty(r.http_redirect_code())),
    }
}
