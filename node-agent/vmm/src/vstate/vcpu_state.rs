//! What a snapshot carries per vCPU, and the KVM calls that read and load it.

use kvm_bindings::{
    Msrs, kvm_debugregs, kvm_fpu, kvm_lapic_state, kvm_mp_state, kvm_msr_entry, kvm_regs,
    kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave,
};
use kvm_ioctls::VcpuFd;

use crate::snapshot::codec::{CodecError, StateReader, StateWriter};

/// Everything KVM holds for one vCPU that a snapshot must carry.
#[derive(Clone)]
pub struct VcpuState {
    /// General registers.
    pub regs: kvm_regs,
    /// Segment and control registers.
    pub sregs: kvm_sregs,
    /// x87/SSE state (also inside xsave; kept for hosts without xsave).
    pub fpu: kvm_fpu,
    /// Local APIC registers.
    pub lapic: kvm_lapic_state,
    /// Runnable / halted / waiting for SIPI.
    pub mp_state: kvm_mp_state,
    /// Pending exceptions, interrupts, NMIs.
    pub events: kvm_vcpu_events,
    /// Extended control registers.
    pub xcrs: kvm_xcrs,
    /// Debug registers.
    pub debugregs: kvm_debugregs,
    /// Legacy 4 KiB xsave area.
    pub xsave: Vec<u32>,
    /// (index, value) pairs.
    pub msrs: Vec<(u32, u64)>,
}

impl VcpuState {
    /// Reads the state out of KVM (the vCPU must not be running).
    pub fn save(fd: &VcpuFd, msr_indices: &[u32]) -> Result<Self, kvm_ioctls::Error> {
        let mp_state = fd.get_mp_state()?;
        let regs = fd.get_regs()?;
        let sregs = fd.get_sregs()?;
        let fpu = fd.get_fpu()?;
        let xsave = fd.get_xsave()?.region.to_vec();
        let xcrs = fd.get_xcrs()?;
        let debugregs = fd.get_debug_regs()?;
        let lapic = fd.get_lapic()?;
        let events = fd.get_vcpu_events()?;
        let msrs = read_msrs(fd, msr_indices)?;
        Ok(VcpuState {
            regs,
            sregs,
            fpu,
            lapic,
            mp_state,
            events,
            xcrs,
            debugregs,
            xsave,
            msrs,
        })
    }

    /// Loads the state into a fresh vCPU, in the order KVM needs (Firecracker's order).
    pub fn restore(&self, fd: &VcpuFd) -> Result<(), kvm_ioctls::Error> {
        fd.set_mp_state(self.mp_state)?;
        fd.set_regs(&self.regs)?;
        fd.set_sregs(&self.sregs)?;
        fd.set_fpu(&self.fpu)?;
        let mut xsave = kvm_xsave::default();
        for (dst, src) in xsave.region.iter_mut().zip(&self.xsave) {
            *dst = *src;
        }
        // SAFETY: a legacy 4 KiB kvm_xsave with no FAM extension, as KVM_SET_XSAVE reads.
        unsafe { fd.set_xsave(&xsave)? };
        fd.set_xcrs(&self.xcrs)?;
        fd.set_debug_regs(&self.debugregs)?;
        fd.set_lapic(&self.lapic)?;
        write_msrs(fd, &self.msrs)?;
        fd.set_vcpu_events(&self.events)?;
        Ok(())
    }

    /// Encodes into a snapshot.
    pub fn encode(&self, w: &mut StateWriter) {
        w.pod(&self.regs);
        w.pod(&self.sregs);
        w.pod(&self.fpu);
        w.pod(&self.lapic);
        w.pod(&self.mp_state);
        w.pod(&self.events);
        w.pod(&self.xcrs);
        w.pod(&self.debugregs);
        w.u64(self.xsave.len() as u64);
        for word in &self.xsave {
            w.u32(*word);
        }
        w.u64(self.msrs.len() as u64);
        for (index, value) in &self.msrs {
            w.u32(*index);
            w.u64(*value);
        }
    }

    /// Decodes from a snapshot.
    pub fn decode(r: &mut StateReader<'_>) -> Result<Self, CodecError> {
        let regs = r.pod()?;
        let sregs = r.pod()?;
        let fpu = r.pod()?;
        let lapic = r.pod()?;
        let mp_state = r.pod()?;
        let events = r.pod()?;
        let xcrs = r.pod()?;
        let debugregs = r.pod()?;
        let xsave_len = r.u64()?;
        if xsave_len > 1024 {
            return Err(CodecError::Invalid("xsave length"));
        }
        let xsave = (0..xsave_len).map(|_| r.u32()).collect::<Result<_, _>>()?;
        let msr_count = r.u64()?;
        if msr_count > 1024 {
            return Err(CodecError::Invalid("msr count"));
        }
        let msrs = (0..msr_count)
            .map(|_| Ok((r.u32()?, r.u64()?)))
            .collect::<Result<_, _>>()?;
        Ok(VcpuState {
            regs,
            sregs,
            fpu,
            lapic,
            mp_state,
            events,
            xcrs,
            debugregs,
            xsave,
            msrs,
        })
    }
}

/// Reads `indices`, skipping any the host refuses (KVM stops at the first failure).
fn read_msrs(fd: &VcpuFd, indices: &[u32]) -> Result<Vec<(u32, u64)>, kvm_ioctls::Error> {
    let mut out = Vec::new();
    let mut rest = indices;
    while !rest.is_empty() {
        let entries: Vec<kvm_msr_entry> = rest
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut msrs =
            Msrs::from_entries(&entries).map_err(|_| kvm_ioctls::Error::new(libc::E2BIG))?;
        let read = fd.get_msrs(&mut msrs)?;
        out.extend(msrs.as_slice()[..read].iter().map(|e| (e.index, e.data)));
        // Skip the one that failed and carry on.
        rest = rest.get(read + 1..).unwrap_or(&[]);
    }
    Ok(out)
}

/// Writes MSRs, failing if KVM takes fewer than given.
pub fn write_msrs(fd: &VcpuFd, msrs: &[(u32, u64)]) -> Result<(), kvm_ioctls::Error> {
    let entries: Vec<kvm_msr_entry> = msrs
        .iter()
        .map(|&(index, data)| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    let kvm_msrs = Msrs::from_entries(&entries).map_err(|_| kvm_ioctls::Error::new(libc::E2BIG))?;
    let written = fd.set_msrs(&kvm_msrs)?;
    if written != msrs.len() {
        return Err(kvm_ioctls::Error::new(libc::EINVAL));
    }
    Ok(())
}
