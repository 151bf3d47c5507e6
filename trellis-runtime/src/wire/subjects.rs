//! Subject rules: every concrete subject derives from the deployment, the
//! contract id and a manifest subject (or template), never from author
//! strings.

/// The concrete subject of a contract surface in a deployment.
pub fn surface_subject(deployment: &str, contract_id: &str, manifest_subject: &str) -> String {
    let contract = contract_id.replace('.', "_");
    format!("trellis.{deployment}.{contract}.{manifest_subject}")
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
