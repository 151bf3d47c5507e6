//! Subject rules: every concrete subject derives from the deployment, the
//! contract id and a manifest subject (or template), never from author
//! strings.

/// The concrete subject of what a contract's services publish themselves
/// (events), in a deployment: `trellis.<deployment>.<contract>.<subject>`.
pub fn surface_subject(deployment: &str, contract_id: &str, manifest_subject: &str) -> String {
    let contract = contract_id.replace('.', "_");
    format!("trellis.{deployment}.{contract}.{manifest_subject}")
}

/// The caller token of a connection without a key (a deployment without
/// authentication): the caller is then asserted in headers.
pub const NO_CALLER: &str = "_";

/// The concrete subject a caller sends requests to (RPCs, operation
/// starts and controls, send transfers, download redemptions):
/// `trellis.<deployment>.<caller>.<contract>.<subject>`, where `caller`
/// is the public key of the caller's connection ([`NO_CALLER`] without
/// one). With authentication nats-server lets a connection publish only
/// below its own key, so the token is the proven caller.
pub fn request_subject(
    deployment: &str,
    caller: &str,
    contract_id: &str,
    manifest_subject: &str,
) -> String {
    let contract = contract_id.replace('.', "_");
    format!("trellis.{deployment}.{caller}.{contract}.{manifest_subject}")
}

/// What a provider subscribes to for requests to one of its surfaces:
/// [`request_subject`] from every caller.
pub fn served_subject(deployment: &str, contract_id: &str, manifest_subject: &str) -> String {
    request_subject(deployment, "*", contract_id, manifest_subject)
}

/// The caller token of a request subject of `deployment`.
pub fn caller_token<'a>(deployment: &str, subject: &'a str) -> Option<&'a str> {
    let rest = subject
        .strip_prefix("trellis.")?
        .strip_prefix(deployment)?
        .strip_prefix('.')?;
    rest.split_once('.').map(|(caller, _)| caller)
}

/// The control subject of an operation (get, watch, cancel), under the
/// operation's concrete subject `base`.
pub fn control_subject(base: &str) -> String {
    format!("{base}.control")
}

/// `template` with each `{/pointer}` replaced by `token(pointer)`; an
/// unclosed `{` is kept as text.
pub fn render<E>(
    template: &str,
    mut token: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push_str(&token(&rest[start + 1..start + end])?);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_subjects_carry_the_caller() {
        let s = request_subject("prod", "UKEY", "a.b@v1", "rpc.v1.X.Y");
        assert_eq!(s, "trellis.prod.UKEY.a_b@v1.rpc.v1.X.Y");
        assert_eq!(caller_token("prod", &s), Some("UKEY"));
        assert_eq!(caller_token("pro", &s), None);
        assert_eq!(caller_token("prod", "trellis.prod"), None);
        assert_eq!(
            served_subject("prod", "a@v1", "rpc.v1.X"),
            "trellis.prod.*.a@v1.rpc.v1.X"
        );
    }

    #[test]
    fn templates_render_in_order() {
        let out =
            render("events.v1.A.B.{/x}.{/y}", |p| Ok::<_, ()>(format!("<{p}>"))).expect("render");
        assert_eq!(out, "events.v1.A.B.</x>.</y>");
        let plain = render("events.v1.A.B", |_| Ok::<_, ()>(String::new())).expect("render");
        assert_eq!(plain, "events.v1.A.B");
        let unclosed = render("a.{/x}.{/y", |_| Ok::<_, ()>("*".to_owned())).expect("render");
        assert_eq!(unclosed, "a.*.{/y");
    }
}
