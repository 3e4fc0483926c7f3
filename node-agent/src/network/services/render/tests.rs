use std::net::Ipv4Addr;

use drover_proto::types::pod::Protocol;

use super::*;

fn cfg() -> ProxyConfig {
    ProxyConfig {
        table: table("drover0"),
        node_ips: vec![Ipv4Addr::new(192, 168, 1, 10), Ipv4Addr::LOCALHOST],
        local_cidr: Cidr::parse("10.88.1.0/24").unwrap(),
        cluster_cidr: Cidr::parse_range("10.88.0.0/16").unwrap(),
        when_no_endpoints: WhenNoEndpoints::Reject,
    }
}

fn backend(ip: [u8; 4], port: u16) -> Backend {
    Backend {
        ip: Ipv4Addr::from(ip),
        port,
    }
}

fn rules() -> Vec<ServicePortRule> {
    vec![
        ServicePortRule {
            id: "default/dns/53".into(),
            cluster_ip: Ipv4Addr::new(10, 96, 0, 10),
            protocol: Protocol::Udp,
            port: 53,
            node_port: None,
            endpoints: vec![],
            scale_from_zero: true,
        },
        ServicePortRule {
            id: "default/web/http".into(),
            cluster_ip: Ipv4Addr::new(10, 96, 0, 2),
            protocol: Protocol::Tcp,
            port: 80,
            node_port: Some(30080),
            // A named target port resolved to 8080 on one pod, 9090 on another.
            endpoints: vec![backend([10, 88, 1, 2], 8080), backend([10, 88, 2, 5], 9090)],
            scale_from_zero: false,
        },
        ServicePortRule {
            id: "shop/api/443".into(),
            cluster_ip: Ipv4Addr::new(10, 96, 0, 3),
            protocol: Protocol::Tcp,
            port: 443,
            node_port: Some(30443),
            endpoints: vec![],
            scale_from_zero: true,
        },
    ]
}

const GOLDEN: &str = "table ip drover_svc_drover0
delete table ip drover_svc_drover0
table ip drover_svc_drover0
table ip drover_svc_drover0 {
\tcounter svc/default/web/http { }
\tcounter ep/default/web/http/10.88.1.2/8080 { }
\tcounter ep/default/web/http/10.88.2.5/9090 { }
\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tjump services
\t}
\tchain output {
\t\ttype nat hook output priority -100; policy accept;
\t\tjump services
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tmeta mark & 0x10000 == 0x10000 masquerade
\t}
\tchain filter_input {
\t\ttype filter hook input priority -10; policy accept;
\t\tiifname != \"lo\" ip daddr 127.0.0.0/8 ct state != { established, related } drop
\t\tct state new jump no_endpoints
\t}
\tchain filter_forward {
\t\ttype filter hook forward priority -10; policy accept;
\t\tct state new jump no_endpoints
\t}
\tchain filter_output {
\t\ttype filter hook output priority -10; policy accept;
\t\tct state new jump no_endpoints
\t}
\tchain services {
\t\tip daddr 10.96.0.2 tcp dport 80 goto svc/default/web/http
\t\tip daddr { 192.168.1.10, 127.0.0.1 } tcp dport 30080 goto np/default/web/http
\t}
\tchain no_endpoints {
\t\tip daddr 10.96.0.10 udp dport 53 reject
\t\tip daddr 10.96.0.3 tcp dport 443 reject with tcp reset
\t\tip daddr { 192.168.1.10, 127.0.0.1 } tcp dport 30443 reject with tcp reset
\t}
\tchain np/default/web/http {
\t\tmeta mark set meta mark | 0x10000
\t\tgoto svc/default/web/http
\t}
\tchain svc/default/web/http {
\t\tip saddr != 10.88.0.0/16 meta mark set meta mark | 0x10000
\t\tcounter name svc/default/web/http
\t\tnumgen random mod 2 vmap { 0 : goto ep/default/web/http/10.88.1.2/8080, 1 : goto ep/default/web/http/10.88.2.5/9090 }
\t}
\tchain ep/default/web/http/10.88.1.2/8080 {
\t\tcounter name ep/default/web/http/10.88.1.2/8080
\t\tip saddr 10.88.1.0/24 meta mark set meta mark | 0x10000
\t\tmeta l4proto tcp dnat to 10.88.1.2:8080
\t}
\tchain ep/default/web/http/10.88.2.5/9090 {
\t\tcounter name ep/default/web/http/10.88.2.5/9090
\t\tmeta l4proto tcp dnat to 10.88.2.5:9090
\t}
}
";

#[test]
fn golden_ruleset_for_a_fresh_table() {
    let out = render(&cfg(), &rules(), &Existing::default());
    assert_eq!(out, GOLDEN, "got:\n{out}");
}

#[test]
fn an_existing_table_is_flushed_and_loses_only_what_is_gone() {
    let existing = Existing {
        table: true,
        chains: [
            "prerouting",
            "services",
            "svc/default/old/80",
            "svc/default/web/http",
        ]
        .map(String::from)
        .into(),
        counters: ["svc/default/old/80", "svc/default/web/http"]
            .map(String::from)
            .into(),
    };
    let out = render(&cfg(), &rules(), &existing);
    let head: Vec<&str> = out.lines().take(4).collect();
    assert_eq!(
        head,
        [
            "table ip drover_svc_drover0",
            "flush table ip drover_svc_drover0",
            "delete chain ip drover_svc_drover0 svc/default/old/80",
            "delete counter ip drover_svc_drover0 svc/default/old/80",
        ]
    );
    // The rest is the same whole table.
    let body = GOLDEN
        .split_once("\ntable ip drover_svc_drover0 {")
        .map(|(_, b)| b);
    assert!(out.ends_with(body.unwrap_or("missing")));
    assert!(!out.contains("delete table"));
}

#[test]
fn one_endpoint_needs_no_random_choice_and_no_node_ips_no_node_ports() {
    let mut c = cfg();
    c.node_ips.clear();
    let mut r = rules();
    r[1].endpoints.truncate(1);
    let out = render(&c, &r, &Existing::default());
    assert!(out.contains("\t\tgoto ep/default/web/http/10.88.1.2/8080\n"));
    assert!(!out.contains("numgen"));
    assert!(!out.contains("dport 30080"));
    assert!(!out.contains("dport 30443"));
}

#[test]
fn no_services_still_renders_the_hooks() {
    let out = render(&cfg(), &[], &Existing::default());
    assert!(out.contains("chain services {\n\t}"));
    assert!(out.contains("chain no_endpoints {\n\t}"));
    assert!(!out.contains("counter "));
}

#[test]
fn long_names_are_cut_with_a_hash() {
    let mut r = rules().remove(1);
    r.id = format!("default/{}/http", "a".repeat(300));
    let name = service_counter(&r);
    assert!(name.len() <= 200, "{}", name.len());
    assert_ne!(name, {
        r.id = format!("default/{}/https", "a".repeat(300));
        service_counter(&r)
    });
}

#[test]
fn held_services_are_sent_to_the_activator_and_udp_still_refused() {
    let mut c = cfg();
    c.when_no_endpoints = WhenNoEndpoints::Hold {
        activator: "10.88.1.1:40123".parse().unwrap(),
    };
    let out = render(&c, &rules(), &Existing::default());
    let services = out
        .split_once("\tchain services {\n")
        .and_then(|(_, rest)| rest.split_once("\t}\n"))
        .map(|(body, _)| body);
    assert_eq!(
        services,
        Some(
            "\t\tip daddr 10.96.0.2 tcp dport 80 goto svc/default/web/http
\t\tip daddr { 192.168.1.10, 127.0.0.1 } tcp dport 30080 goto np/default/web/http
\t\tip daddr 10.96.0.3 tcp dport 443 dnat to 10.88.1.1:40123
\t\tip daddr { 192.168.1.10, 127.0.0.1 } tcp dport 30443 dnat to 10.88.1.1:40123
"
        )
    );
    assert!(out.contains("chain no_endpoints {\n\t\tip daddr 10.96.0.10 udp dport 53 reject\n\t}"));
    assert!(!out.contains("tcp dport 443 reject"));

    // A Service that did not opt in is refused as before.
    let mut r = rules();
    r[2].scale_from_zero = false;
    let out = render(&c, &r, &Existing::default());
    assert!(!out.contains("dnat to 10.88.1.1:40123"));
    assert!(out.contains("ip daddr 10.96.0.3 tcp dport 443 reject with tcp reset"));
}
