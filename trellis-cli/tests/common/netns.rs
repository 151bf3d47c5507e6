//! Network namespaces for partition tests (root only): a hub namespace
//! holding a bridge; each server's namespace joined to the hub by a veth
//! pair, at its own address; and the test's own namespace joined the same
//! way. Cutting a server off sets its veth down inside the hub: no reset,
//! no error, just silence, as a real partition. Everything is removed on
//! drop.

use std::process::Command;

/// Three server namespaces and the hub joining them.
pub struct Netns {
    tag: String,
    subnet: String,
    created: Vec<String>,
    root_link: Option<String>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}`: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// Creates the namespaces and links. `Ok(None)` (the reason printed)
    /// where network namespaces cannot be made at all: no `ip`, or the
    /// first namespace is refused (no root). Once one could be made, every
    /// later failure is a broken set-up and an `Err`, never a skip.
    pub fn create() -> Result<Option<Netns>, String> {
        let pid = std::process::id();
        let mut netns = Netns {
            tag: format!("tr{}", pid % 100_000),
            subnet: format!("10.213.{}", pid % 250),
            created: Vec::new(),
            root_link: None,
        };
        let hub = netns.hub();
        if let Err(e) = ip(&["netns", "add", &hub]) {
            eprintln!("SKIPPED: network namespaces are unavailable here: {e}");
            return Ok(None);
        }
        netns.created.push(hub);
        netns.build()?;
        Ok(Some(netns))
    }

    fn hub(&self) -> String {
        format!("{}h", self.tag)
    }

    /// The namespace of server `i`.
    pub fn name(&self, i: usize) -> String {
        format!("{}n{}", self.tag, i + 1)
    }

    /// The address of server `i`.
    pub fn address(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, i + 1)
    }

    /// The hub-side end of server `i`'s link.
    fn hub_end(&self, i: usize) -> String {
        format!("{}a{}", self.tag, i + 1)
    }

    fn build(&mut self) -> Result<(), String> {
        let hub = self.hub();
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 0..3 {
            let ns = self.name(i);
            ip(&["netns", "add", &ns])?;
            self.created.push(ns.clone());
            let (a, b) = (self.hub_end(i), format!("{}b{}", self.tag, i + 1));
            ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])?;
            ip(&["link", "set", &a, "netns", &hub])?;
            ip(&["link", "set", &b, "netns", &ns])?;
            ip(&["-n", &hub, "link", "set", &a, "master", "br0", "up"])?;
            let address = format!("{}/24", self.address(i));
            ip(&["-n", &ns, "addr", "add", &address, "dev", &b])?;
            ip(&["-n", &ns, "link", "set", &b, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        // The test process reaches every server through the hub.
        let (root, root_peer) = (format!("{}r", self.tag), format!("{}rh", self.tag));
        ip(&[
            "link", "add", &root, "type", "veth", "peer", "name", &root_peer,
        ])?;
        self.root_link = Some(root.clone());
        ip(&["link", "set", &root_peer, "netns", &hub])?;
        ip(&["-n", &hub, "link", "set", &root_peer, "master", "br0", "up"])?;
        let address = format!("{}.254/24", self.subnet);
        ip(&["addr", "add", &address, "dev", &root])?;
        ip(&["link", "set", &root, "up"])?;
        Ok(())
    }

    /// Cuts server `i` off from the other servers and from every client.
    pub fn cut(&self, i: usize) {
        ip(&["-n", &self.hub(), "link", "set", &self.hub_end(i), "down"]).expect("cut the link");
    }

    /// Joins server `i` again.
    pub fn heal(&self, i: usize) {
        ip(&["-n", &self.hub(), "link", "set", &self.hub_end(i), "up"]).expect("heal the link");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends inside it, and with
        // them their peers.
        if let Some(root) = self.root_link.take() {
            let _ = ip(&["link", "del", &root]);
        }
        for ns in self.created.drain(..).rev() {
            let _ = ip(&["netns", "del", &ns]);
        }
    }
}
