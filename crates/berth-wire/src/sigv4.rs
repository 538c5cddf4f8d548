//! SigV4 credential scopes: who signed a request, for which region and service.
//! Signature verification lives at the edge (it needs the whole HTTP request).

/// `AKID/DATE/REGION/SERVICE/aws4_request`, kept as one string (parsing a request's
/// scope is on every request's path; one allocation, not four).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope {
    raw: String,
    /// Where the access key, date, region and service end in `raw`.
    ends: [usize; 4],
}

impl CredentialScope {
    fn part(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] + 1 };
        &self.raw[start..self.ends[i]]
    }
    pub fn access_key(&self) -> &str {
        self.part(0)
    }
    pub fn date(&self) -> &str {
        self.part(1)
    }
    pub fn region(&self) -> &str {
        self.part(2)
    }
    pub fn service(&self) -> &str {
        self.part(3)
    }
}

/// `AKID/20260101/us-east-1/ecs/aws4_request`
pub fn parse_credential(s: &str) -> Option<CredentialScope> {
    let mut ends = [0usize; 4];
    let mut parts = s.split('/');
    let mut at = 0;
    for end in ends.iter_mut() {
        at += parts.next()?.len();
        *end = at;
        at += 1;
    }
    if parts.next()? != "aws4_request" || parts.next().is_some() || ends[0] == 0 {
        return None;
    }
    Some(CredentialScope {
        raw: s[..ends[3]].to_string(),
        ends,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    pub scope: CredentialScope,
    /// As sent: names separated by `;` (split only when a signature is checked).
    signed_headers: String,
    pub signature: String,
}

impl AuthHeader {
    pub fn signed_headers(&self) -> impl Iterator<Item = &str> {
        self.signed_headers.split(';')
    }
}

/// `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=a;b, Signature=hex`
pub fn parse_authorization(header: &str) -> Option<AuthHeader> {
    let rest = header.strip_prefix("AWS4-HMAC-SHA256")?.trim_start();
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => cred = parse_credential(v),
            "SignedHeaders" => signed = Some(v.to_string()),
            "Signature" => sig = Some(v.to_string()),
            _ => {}
        }
    }
    Some(AuthHeader {
        scope: cred?,
        signed_headers: signed?,
        signature: sig?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_header() {
        let h = "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature=abcd";
        let a = parse_authorization(h).unwrap();
        assert_eq!(a.scope.access_key(), "AKID");
        assert_eq!(a.scope.date(), "20260101");
        assert_eq!(a.scope.region(), "eu-west-1");
        assert_eq!(a.scope.service(), "ecs");
        assert_eq!(
            a.signed_headers().collect::<Vec<_>>(),
            ["host", "x-amz-date"]
        );
        assert_eq!(a.signature, "abcd");
    }
    #[test]
    fn rejects_garbage() {
        assert!(parse_authorization("Bearer x").is_none());
        assert!(parse_credential("AKID/2026/us-east-1/ecs").is_none());
        assert!(parse_credential("/2026/us-east-1/ecs/aws4_request").is_none());
    }
}
