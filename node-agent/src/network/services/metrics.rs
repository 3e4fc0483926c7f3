//! The service counters as Prometheus text (pure): connections per service
//! port and per endpoint, as this node's rules counted them (what the
//! autoscaler's requests-per-second will be read from).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::existing::CounterValue;

/// Prometheus exposition of the counters named `svc/NS/NAME/PORT` and
/// `ep/NS/NAME/PORT/IP/TARGETPORT`; other (shortened) names are left out.
pub fn render(counters: &BTreeMap<String, CounterValue>) -> String {
    let mut services = String::new();
    let mut endpoints = String::new();
    for (name, value) in counters {
        let parts: Vec<&str> = name.split('/').collect();
        match parts.as_slice() {
            ["svc", ns, svc, port] => {
                let _ = writeln!(
                    services,
                    "drover_service_connections_total{{namespace=\"{ns}\",service=\"{svc}\",port=\"{port}\"}} {}",
                    value.packets
                );
            }
            ["ep", ns, svc, port, ip, target] => {
                let _ = writeln!(
                    endpoints,
                    "drover_endpoint_connections_total{{namespace=\"{ns}\",service=\"{svc}\",port=\"{port}\",endpoint=\"{ip}:{target}\"}} {}",
                    value.packets
                );
            }
            _ => {}
        }
    }
    format!(
        "# HELP drover_service_connections_total Connections to a service port through this node.\n\
         # TYPE drover_service_connections_total counter\n\
         {services}\
         # HELP drover_endpoint_connections_total Connections this node sent to a service endpoint.\n\
         # TYPE drover_endpoint_connections_total counter\n\
         {endpoints}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_become_labelled_series() {
        let c = |packets| CounterValue { packets, bytes: 0 };
        let counters = BTreeMap::from([
            ("svc/default/web/http".to_string(), c(7)),
            ("ep/default/web/http/10.88.1.2/8080".to_string(), c(4)),
            ("ep/default/web/http/10.88.2.5/8080".to_string(), c(3)),
            ("svc/default/some-very-long-h0123".to_string(), c(1)),
        ]);
        let text = render(&counters);
        assert!(text.contains(
            "drover_service_connections_total{namespace=\"default\",service=\"web\",port=\"http\"} 7\n"
        ));
        assert!(text.contains(
            "drover_endpoint_connections_total{namespace=\"default\",service=\"web\",port=\"http\",endpoint=\"10.88.2.5:8080\"} 3\n"
        ));
        assert!(!text.contains("some-very-long"));
        assert!(text.starts_with("# HELP drover_service_connections_total"));
    }
}
