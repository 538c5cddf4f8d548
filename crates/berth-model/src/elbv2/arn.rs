//! ELBv2 ARNs: `arn:aws:elasticloadbalancing:{region}:{account}:{resource}` with resource
//! `loadbalancer/{app|net}/NAME/ID`, `targetgroup/NAME/ID`,
//! `listener/{app|net}/NAME/LBID/ID` or `listener-rule/{app|net}/NAME/LBID/LISTENERID/ID`.

const PREFIX: &str = "arn:aws:elasticloadbalancing:";

/// `app` or `net`, as a load balancer's type (`application`, `network`) shows in its ARNs.
pub fn type_tag(lb_type: &str) -> &'static str {
    if lb_type == "network" {
        "net"
    } else {
        "app"
    }
}

pub fn arn(region: &str, account: &str, resource: &str) -> String {
    format!("{PREFIX}{region}:{account}:{resource}")
}

pub fn lb_arn(region: &str, account: &str, lb_type: &str, name: &str, id: &str) -> String {
    arn(
        region,
        account,
        &format!("loadbalancer/{}/{name}/{id}", type_tag(lb_type)),
    )
}

pub fn tg_arn(region: &str, account: &str, name: &str, id: &str) -> String {
    arn(region, account, &format!("targetgroup/{name}/{id}"))
}

/// A listener's ARN from its load balancer's.
pub fn listener_arn(lb_arn: &str, id: &str) -> String {
    format!(
        "{}/{id}",
        lb_arn.replacen(":loadbalancer/", ":listener/", 1)
    )
}

/// The prefix (without the trailing `/`) of the ARNs of a listener's rules.
pub fn rule_arn_prefix(listener_arn: &str) -> String {
    listener_arn.replacen(":listener/", ":listener-rule/", 1)
}

pub fn rule_arn(listener_arn: &str, id: &str) -> String {
    format!("{}/{id}", rule_arn_prefix(listener_arn))
}

/// The last part of any ELBv2 ARN: the resource's 16-hex id.
pub fn id_of(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or("")
}

/// What an ELBv2 ARN names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arn {
    Lb {
        name: String,
        id: String,
    },
    Tg {
        name: String,
        id: String,
    },
    Listener {
        lb_id: String,
        id: String,
    },
    Rule {
        lb_id: String,
        listener_id: String,
        id: String,
    },
}

/// Parse an ELBv2 ARN; `None` if malformed. Callers look the record up by the ids and
/// compare its full ARN, so an ARN of another account or region names nothing.
pub fn parse(arn: &str) -> Option<Arn> {
    let rest = arn.strip_prefix(PREFIX)?;
    let mut parts = rest.splitn(3, ':');
    let (region, account, resource) = (parts.next()?, parts.next()?, parts.next()?);
    if region.is_empty() || account.is_empty() {
        return None;
    }
    let seg: Vec<&str> = resource.split('/').collect();
    let hex = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let kind = |s: &str| s == "app" || s == "net";
    let a = match seg.as_slice() {
        ["loadbalancer", k, name, id] if kind(k) && hex(id) && !name.is_empty() => Arn::Lb {
            name: name.to_string(),
            id: id.to_string(),
        },
        ["targetgroup", name, id] if hex(id) && !name.is_empty() => Arn::Tg {
            name: name.to_string(),
            id: id.to_string(),
        },
        ["listener", k, _, lb, id] if kind(k) && hex(lb) && hex(id) => Arn::Listener {
            lb_id: lb.to_string(),
            id: id.to_string(),
        },
        ["listener-rule", k, _, lb, l, id] if kind(k) && hex(lb) && hex(l) && hex(id) => {
            Arn::Rule {
                lb_id: lb.to_string(),
                listener_id: l.to_string(),
                id: id.to_string(),
            }
        }
        _ => return None,
    };
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_round_trip() {
        let (lb_id, l_id, r_id) = ("0123456789abcdef", "1123456789abcdef", "2123456789abcdef");
        let lb = lb_arn("us-east-1", "000000000000", "application", "web", lb_id);
        assert_eq!(
            lb,
            "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/web/0123456789abcdef"
        );
        let l = listener_arn(&lb, l_id);
        let r = rule_arn(&l, r_id);
        assert_eq!(
            parse(&lb),
            Some(Arn::Lb {
                name: "web".into(),
                id: lb_id.into()
            })
        );
        assert_eq!(
            parse(&l),
            Some(Arn::Listener {
                lb_id: lb_id.into(),
                id: l_id.into()
            })
        );
        assert_eq!(
            parse(&r),
            Some(Arn::Rule {
                lb_id: lb_id.into(),
                listener_id: l_id.into(),
                id: r_id.into()
            })
        );
        let tg = tg_arn("us-east-1", "000000000000", "g", lb_id);
        assert_eq!(id_of(&tg), lb_id);
        assert!(matches!(parse(&tg), Some(Arn::Tg { .. })));
        assert_eq!(
            parse("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/g/xyz"),
            None
        );
    }
}
