use super::*;

fn token(tenants: &[&str], roles: &[&str]) -> Caller {
    Caller::Token(Arc::new(Principal::new("t", tenants, roles).unwrap()))
}

#[test]
fn patterns_match_names_prefixes_and_everything() {
    let t = Tenants::parse(&["a", "", "acme-*"]).unwrap();
    assert!(t.allows("a") && t.allows("") && t.allows("acme-") && t.allows("acme-42"));
    assert!(!t.allows("ab") && !t.allows("acme") && !t.allows("b"));
    assert!(Tenants::parse(&["x", "*"]).unwrap().allows("anything"));
    assert!(!Tenants::parse::<&str>(&[]).unwrap().allows(""));
    assert!(Tenants::parse(&["a", "b"]).unwrap().exact_only().is_some());
    assert!(Tenants::parse(&["a*"]).unwrap().exact_only().is_none());
}

#[test]
fn bad_patterns_and_roles_name_their_entry() {
    let e = Tenants::parse(&["ok", "a*b"]).unwrap_err();
    assert!(e.to_string().starts_with("tenants[1]:"), "{e}");
    let e = Tenants::parse(&["\n"]).unwrap_err();
    assert!(e.to_string().starts_with("tenants[0]:"), "{e}");
    let e = Principal::new("t", &["a"], &["work", "root"]).unwrap_err();
    assert!(e.to_string().starts_with("roles[1]:"), "{e}");
}

#[test]
fn each_role_grants_its_rpcs_and_admin_grants_all() {
    for rpc in Rpc::ALL {
        let need = need(rpc);
        // The admin service needs the admin role; the rest of the job contract, operate.
        if rpc.service() == crate::rpc::Service::Admin {
            assert_eq!(need, Need::Role(Role::Admin), "{rpc:?}");
        } else {
            assert_ne!(need, Need::Role(Role::Admin), "{rpc:?}");
        }
        assert!(token(&["*"], &["admin"]).permit(rpc).is_ok(), "{rpc:?}");
        let operate = token(&["*"], &["operate"]).permit(rpc).is_ok();
        assert_eq!(operate, need != Need::Role(Role::Admin), "{rpc:?}");
        let produce = token(&["*"], &["produce"]).permit(rpc).is_ok();
        assert_eq!(
            produce,
            matches!(need, Need::Role(Role::Produce) | Need::AnyToken),
            "{rpc:?}"
        );
        let none = token(&["*"], &[]).permit(rpc);
        assert_eq!(none.is_ok(), need == Need::AnyToken, "{rpc:?}");
        if let Err(e) = none {
            assert_eq!(e.status().code, crate::error::Code::PermissionDenied);
        }
        assert!(Caller::Trusted.permit(rpc).is_ok());
    }
}

#[test]
fn tenant_checks_answer_permission_denied() {
    let c = token(&["a", "b-*"], &["produce"]);
    assert!(c.check_tenant("a").is_ok() && c.check_tenant("b-1").is_ok());
    let e = c.check_tenant("c").unwrap_err();
    assert!(matches!(e, Error::PermissionDenied(_)));
    assert!(Caller::Trusted.check_tenant("c").is_ok());
    assert!(c.scope().allows("b-2") && !c.scope().allows("c"));
    assert!(Caller::Trusted.scope().tenants().is_none());
    // `*` among the patterns: a scope with no filter at all.
    assert!(token(&["a", "*"], &[]).scope().tenants().is_none());
}
