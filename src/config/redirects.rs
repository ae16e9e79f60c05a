//! The `[redirects]` section: how the site's `_redirects` and `_headers` are read, and what
//! serves the rules S3 cannot store as objects. They join the chain once its steps and this run's
//! shard are known: the redirect objects are keys of the shard that owns them.

use std::path::Path;

use serde::Deserialize;

use super::error::{ConfigError, Origins};
use crate::keys::shard::Shard;
use crate::transform::ChainSpec;
use crate::transform::redirects::{Context, RedirectsConfig};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SiteFilesConfig {
    /// `_redirects` and `_headers` (see docs/redirects-and-headers.md).
    pub redirects: RedirectsConfig,
}

impl SiteFilesConfig {
    /// `chain` with the steps of the site's `_redirects` and `_headers`, when it has any; their
    /// files are read now, and refused line by line, before anything is sent.
    pub fn build(
        self,
        chain: ChainSpec,
        (source, shard): (&Path, Option<Shard>),
        origins: Origins,
    ) -> Result<ChainSpec, ConfigError> {
        let file = origins.file_of("redirects");
        let base = file.as_deref().and_then(Path::parent).map(Path::to_owned).unwrap_or_default();
        let cx = Context { source, base: &base, origin: origins.of("redirects"), chain: &chain, shard };
        match self.redirects.build(&cx)? {
            Some(site) => Ok(chain.with_site(site)),
            None => Ok(chain),
        }
    }
}
