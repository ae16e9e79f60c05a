//! Signing a request again after the test proxy removed some of its headers: a signed header
//! that is missing fails the signature check, so the proxy signs what it forwards with the test
//! server's credentials, in the region the client signed for.

/// `head` without the headers `names`, signed again for the test server; `None` when it has
/// none of them.
pub fn resigned_without(head: &[u8], names: &[String]) -> Option<Vec<u8>> {
    use aws_sigv4::http_request::{PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest};
    use aws_sigv4::http_request::{SigningSettings, UriPathNormalizationMode, sign};
    let text = String::from_utf8_lossy(head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    if !headers.iter().any(|(name, _)| names.contains(name)) {
        return None;
    }
    let value = |wanted: &str| headers.iter().find(|(name, _)| name == wanted).map(|(_, v)| v.clone());
    let payload = value("x-amz-content-sha256").unwrap_or_else(|| "UNSIGNED-PAYLOAD".into());
    // Credential=KEY/DATE/REGION/s3/aws4_request
    let region = value("authorization")?.split('/').nth(2)?.to_owned();
    let signed_anew = ["authorization", "x-amz-date", "x-amz-content-sha256"];
    let kept: Vec<&(String, String)> =
        headers.iter().filter(|(n, _)| !names.contains(n) && !signed_anew.contains(&n.as_str())).collect();
    let mut words = request_line.split_whitespace();
    let (method, target) = (words.next()?, words.next()?);
    let identity = aws_credential_types::Credentials::new(
        sitesync::local_store::ACCESS_KEY,
        sitesync::local_store::SECRET_KEY,
        None,
        None,
        "test proxy",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .ok()?
        .into();
    let pairs = kept.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    let signable = SignableRequest::new(method, target, pairs, SignableBody::Precomputed(payload)).ok()?;
    let (instructions, _) = sign(signable, &params).ok()?.into_parts();
    let mut out = format!("{request_line}\r\n");
    for (name, value) in kept.iter().map(|(n, v)| (n.as_str(), v.as_str())).chain(instructions.headers()) {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    Some(out.into_bytes())
}
