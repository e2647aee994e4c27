//! The simulated chip holds a driver to the datasheet: timing rules, reserved bits, frame length
//! per variant, clocks in a daisy chain, electrodes and lead-off current, noise.
use embedded_hal::spi::{Operation, SpiDevice};
use sensors::registers::{cmd, loff, reg, Mux};
use sensors::signal::{SignalModel, SignalParams, Waveform};
use sensors::sim::{
    quantise, shorted_noise_uv, ChainClock, Electrode, NoDelay, Pacing, SimChain, SimDrdy, SimError,
    Violation, SERIES_OHM,
};
use sensors::timing::{T_RESET_NS, T_SCCS_NS};
use sensors::{Ads1299, ChannelConfig, ClockTracker, Config, DataRate, Drdy, Error, Gain};

const SECOND: u64 = 1_000_000_000;

fn flat(channels: usize) -> SignalModel {
    SignalModel::new(SignalParams { waveform: Waveform::Flat, ..Default::default() }, channels)
}

fn config(chips: u8, rate: DataRate) -> Config {
    Config { rate, chips, channels: [ChannelConfig::normal(Gain::X24); 8], ..Config::default() }
}

fn rig(chips: usize) -> (Ads1299<SimChain>, SimDrdy) {
    let sim = SimChain::new(chips, flat(chips * 8));
    let drdy = sim.drdy(Pacing::Virtual);
    (Ads1299::new(sim, chips).unwrap(), drdy)
}

fn up(dev: &mut Ads1299<SimChain>, cfg: &Config) -> Result<sensors::DeviceId, Error<SimError>> {
    let mut delay = dev.spi_mut().delay();
    dev.start_up(cfg, &mut delay)
}

fn timing_error<T: core::fmt::Debug>(r: Result<T, Error<SimError>>) -> Violation {
    match r {
        Err(Error::Bus(SimError::Timing(v))) => v,
        other => panic!("expected a timing violation, got {other:?}"),
    }
}

#[test]
fn a_driver_that_skips_the_reference_wait_fails() {
    let (mut dev, _) = rig(1);
    // `NoDelay` waits nothing: the reference buffer has had no time to settle at START.
    let v = timing_error(dev.start_up(&config(1, DataRate::Sps250), &mut NoDelay));
    assert!(matches!(v, Violation::ReferenceNotSettled { .. }), "{v}");
    // The same driver with its waits passes.
    let (mut dev, _) = rig(1);
    up(&mut dev, &config(1, DataRate::Sps250)).unwrap();
    assert!(dev.spi_mut().violations().is_empty());
}

#[test]
fn a_command_right_after_reset_is_refused() {
    let mut sim = SimChain::new(1, flat(8));
    let hold = T_SCCS_NS as u32;
    sim.transaction(&mut [Operation::Write(&[cmd::RESET]), Operation::DelayNs(hold)]).unwrap();
    let e = sim.transaction(&mut [Operation::Write(&[cmd::SDATAC]), Operation::DelayNs(hold)]).unwrap_err();
    match e {
        SimError::Timing(Violation::TooSoon { after: "RESET", needed_ns, .. }) => {
            assert_eq!(needed_ns, T_RESET_NS)
        }
        e => panic!("{e}"),
    }
    // Waiting the 18 tCLK inside the RESET transaction is enough.
    let mut sim = SimChain::new(1, flat(8));
    sim.transaction(&mut [Operation::Write(&[cmd::RESET]), Operation::DelayNs(T_RESET_NS as u32)]).unwrap();
    sim.transaction(&mut [Operation::Write(&[cmd::SDATAC]), Operation::DelayNs(hold)]).unwrap();
}

#[test]
fn chip_select_must_be_held_after_the_last_clock() {
    let mut sim = SimChain::new(1, flat(8));
    let e = sim.write(&[cmd::SDATAC]).unwrap_err();
    assert!(matches!(e, SimError::Timing(Violation::CsHold { held_ns: 0, .. })), "{e}");
}

#[test]
fn fast_sclk_needs_byte_gaps_which_the_driver_inserts_when_told() {
    // The bus runs at 16 MHz: a byte lasts 500 ns, a quarter of tSDECODE.
    let mut sim = SimChain::new(1, flat(8));
    sim.set_sclk_hz(16_000_000);
    let mut dev = Ads1299::new(sim, 1).unwrap();
    let v = timing_error(up(&mut dev, &config(1, DataRate::Sps250)));
    assert!(matches!(v, Violation::ByteGap { command: "RREG", gap_ns: 500, .. }), "{v}");

    let mut sim = SimChain::new(1, flat(8));
    sim.set_sclk_hz(16_000_000);
    let mut dev = Ads1299::new(sim, 1).unwrap().with_sclk_hz(16_000_000);
    up(&mut dev, &config(1, DataRate::Sps250)).unwrap();
    assert!(dev.spi_mut().violations().is_empty(), "{:?}", dev.spi_mut().violations());
}

#[test]
fn reserved_bits_read_back_as_the_chip_fixes_them() {
    let (mut dev, _) = rig(1);
    up(&mut dev, &config(1, DataRate::Sps250)).unwrap();
    dev.command(cmd::SDATAC).unwrap();
    dev.write_registers(reg::CONFIG1, &[0x06]).unwrap();
    dev.write_registers(reg::MISC1, &[0xFF, 0xFF, 0xFF]).unwrap();
    let mut b = [0u8; 1];
    dev.read_registers(reg::CONFIG1, &mut b).unwrap();
    assert_eq!(b[0], 0x96, "bit 7 reads 1, bits [4:3] read 0b10");
    let mut m = [0u8; 3];
    dev.read_registers(reg::MISC1, &mut m).unwrap();
    assert_eq!(m, [0x20, 0x00, 0x0A], "MISC1: only SRB1; MISC2: nothing; CONFIG4: bits 3 and 1");
}

#[test]
fn each_variant_clocks_out_its_own_frame_length() {
    for (id, channels, bytes) in [(0x3C, 4, 15), (0x3D, 6, 21), (0x3E, 8, 27)] {
        let sim = SimChain::new(1, flat(8));
        let mut drdy = sim.drdy(Pacing::Virtual);
        let mut dev = Ads1299::new(sim, 1).unwrap();
        dev.spi_mut().set_id(0, id);
        dev.spi_mut().set_offset_uv(channels - 1, 1000.0);
        let mut cfg = config(1, DataRate::Sps250);
        cfg.channels = [ChannelConfig::normal(Gain::X1); 8];
        up(&mut dev, &cfg).unwrap();
        assert_eq!((dev.channels(), dev.frame_len()), (channels, bytes));
        drdy.wait(SECOND).unwrap().unwrap();
        let mut ch = [0i32; 8];
        dev.read_frame(&mut ch).unwrap();
        assert_eq!(ch[channels - 1], quantise(1000.0, 1), "the last channel of a {bytes}-byte frame");
    }
}

#[test]
fn a_chip_without_a_clock_ignores_commands() {
    // Chip 2 runs from chip 1's CLK output; the driver is not told (`clock_out: false`), so the
    // clock never starts: chip 2 keeps its reset registers and clocks out zeros.
    let mut sim = SimChain::new(2, flat(16));
    sim.set_chain_clock(ChainClock::FromFirst);
    let mut drdy = sim.drdy(Pacing::Virtual);
    let mut dev = Ads1299::new(sim, 2).unwrap();
    up(&mut dev, &config(2, DataRate::Sps250)).unwrap();
    assert!(!dev.spi_mut().clocked(1));
    assert_eq!(dev.spi_mut().registers(1), sensors::registers::RESET_VALUES);
    drdy.wait(SECOND).unwrap().unwrap();
    let err = dev.read_frame(&mut [0i32; 16]).unwrap_err();
    assert!(matches!(err, Error::BadStatus { chip: 1, byte: 0x00 }), "{err}");
}

#[test]
fn chains_clocked_from_the_first_chip_come_up_when_the_driver_handles_the_clock() {
    for chips in [2usize, 4] {
        let mut sim = SimChain::new(chips, flat(chips * 8));
        sim.set_chain_clock(ChainClock::FromFirst);
        for c in 0..chips * 8 {
            sim.set_offset_uv(c, 100.0 * (c as f64 + 1.0));
        }
        let mut drdy = sim.drdy(Pacing::Virtual);
        let mut dev = Ads1299::new(sim, chips).unwrap();
        let cfg = Config { clock_out: true, ..config(chips as u8, DataRate::Sps250) };
        up(&mut dev, &cfg).unwrap();
        let want = cfg.registers();
        for c in 0..chips {
            assert!(dev.spi_mut().clocked(c));
            assert_eq!(dev.spi_mut().registers(c)[1..=0x11], want[1..=0x11], "chip {}", c + 1);
        }
        drdy.wait(SECOND).unwrap().unwrap();
        let mut ch = [0i32; 32];
        dev.read_frame(&mut ch).unwrap();
        for (c, v) in ch.iter().enumerate().take(chips * 8) {
            assert_eq!(*v, quantise(100.0 * (c as f64 + 1.0), 24), "channel {}", c + 1);
        }
    }
}

#[test]
fn the_driver_refuses_bias_on_a_shared_din_chain() {
    let (mut dev, _) = rig(2);
    let mut cfg = config(2, DataRate::Sps250);
    cfg.bias.enabled = true;
    let err = up(&mut dev, &cfg).unwrap_err();
    assert!(matches!(err, Error::Invalid(m) if m.contains("BIASOUT")), "{err}");
}

#[test]
fn reads_that_overlap_the_next_update_are_corrupted_and_detected() {
    // Two chips at 16 kSPS over a 4 MHz bus: 54 bytes take 108 µs, a period is 62.5 µs.
    let (mut dev, mut drdy) = rig(2);
    up(&mut dev, &config(2, DataRate::Sps16000)).unwrap();
    let mut clock = ClockTracker::new(16_000);
    let mut ch = [0i32; 16];
    for _ in 0..20 {
        let ev = drdy.wait(SECOND).unwrap().unwrap();
        clock.on_drdy(ev);
        let _ = dev.read_frame(&mut ch);
        clock.read_done(dev.spi_mut().now_ns());
    }
    let sim_count = dev.spi_mut().overlapped();
    assert!(sim_count >= 19, "{sim_count}");
    assert_eq!(clock.overlapped(), sim_count, "the host sees every corrupted frame");
    assert!(clock.missed() > 0, "and the periods it lost");

    // One chip at 8 kSPS: 27 bytes in 54 µs + tSCCS, inside the 125 µs period.
    let (mut dev, mut drdy) = rig(1);
    up(&mut dev, &config(1, DataRate::Sps8000)).unwrap();
    let mut clock = ClockTracker::new(8_000);
    for _ in 0..20 {
        clock.on_drdy(drdy.wait(SECOND).unwrap().unwrap());
        dev.read_frame(&mut ch).unwrap();
        clock.read_done(dev.spi_mut().now_ns());
    }
    assert_eq!((dev.spi_mut().overlapped(), clock.overlapped(), clock.missed()), (0, 0, 0));
}

/// Lead-off on every channel's positive input, AC at 31.2 Hz, 6 nA, at 250 SPS and gain 24.
fn ac_lead_off(electrodes: &[Electrode]) -> (Vec<Vec<i32>>, Vec<u8>) {
    let (mut dev, mut drdy) = rig(1);
    for (c, e) in electrodes.iter().enumerate() {
        dev.spi_mut().set_electrode(c, *e);
    }
    let mut cfg = config(1, DataRate::Sps250);
    cfg.lead_off.comparators = true;
    cfg.lead_off.frequency = sensors::config::LeadOffFrequency::Ac31_2Hz;
    for c in &mut cfg.channels {
        c.loff_p = true;
    }
    up(&mut dev, &cfg).unwrap();
    let mut out = vec![Vec::new(); 8];
    let mut stat = Vec::new();
    let mut ch = [0i32; 8];
    for _ in 0..16 {
        drdy.wait(SECOND).unwrap().unwrap();
        let s = dev.read_frame(&mut ch).unwrap();
        stat.push(s.chips[0].loff_statp);
        for (o, v) in out.iter_mut().zip(ch) {
            o.push(v);
        }
    }
    (out, stat)
}

#[test]
fn the_lead_off_current_through_each_electrode_shows_as_a_square_wave() {
    let kohm = [5.0, 20.0, 50.0, 200.0];
    let mut es: Vec<Electrode> =
        kohm.iter().map(|k| Electrode { impedance_ohm: k * 1e3, disconnected: false }).collect();
    es.push(Electrode { impedance_ohm: 5e3, disconnected: true });
    let (out, stat) = ac_lead_off(&es);
    assert_eq!(loff::AC_31_2_HZ, 31.25);
    for (c, k) in kohm.iter().enumerate() {
        // 31.25 Hz at 250 SPS: 4 samples at +I·Z, 4 at −I·Z.
        let v = 6e-9 * (k * 1e3 + SERIES_OHM) * 1e6;
        let (hi, lo) = (quantise(v, 24), quantise(-v, 24));
        assert_eq!(out[c][..8], [hi, hi, hi, hi, lo, lo, lo, lo], "{k} kΩ");
    }
    assert!(out[4].iter().all(|&x| x == 8_388_607), "disconnected: railed");
    assert!(stat.iter().all(|&s| s == 0b1_0000), "only the disconnected one trips its comparator");
}

#[test]
fn shorted_inputs_carry_the_datasheet_noise() {
    let (mut dev, mut drdy) = rig(1);
    let mut cfg = config(1, DataRate::Sps250);
    cfg.channels = [ChannelConfig { mux: Mux::Shorted, ..ChannelConfig::normal(Gain::X24) }; 8];
    up(&mut dev, &cfg).unwrap();
    let uv_per_count = 2.0 * 4.5 / 24.0 / (1u64 << 24) as f64 * 1e6;
    let mut ch = [0i32; 8];
    let (mut sum, mut sq, mut lo, mut hi) = (0.0, 0.0, f64::MAX, f64::MIN);
    let n = 2500;
    for _ in 0..n {
        drdy.wait(SECOND).unwrap().unwrap();
        dev.read_frame(&mut ch).unwrap();
        let v = ch[3] as f64 * uv_per_count;
        sum += v;
        sq += v * v;
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let rms = (sq / n as f64 - (sum / n as f64).powi(2)).sqrt();
    let (want_rms, want_pp) = shorted_noise_uv(250, 24);
    assert_eq!((want_rms, want_pp), (0.14, 0.98), "Table 1, gain 24, 250 SPS");
    assert!((rms - want_rms).abs() < 0.1 * want_rms, "{rms} µV rms");
    assert!(hi - lo > 0.6 * want_pp && hi - lo < 1.6 * want_pp, "{} µVpp", hi - lo);
}

#[test]
fn stale_drdy_edges_are_flushed() {
    let (mut dev, mut drdy) = rig(1);
    up(&mut dev, &config(1, DataRate::Sps250)).unwrap();
    dev.spi_mut().queue_stale_drdy(3);
    assert_eq!(drdy.flush().unwrap(), 3);
    let ev = drdy.wait(SECOND).unwrap().unwrap();
    assert!(ev.timestamp_ns > 150_000_000, "the first edge is this run's: {}", ev.timestamp_ns);
    // Without the flush the first event is an old one.
    let (mut dev, mut drdy) = rig(1);
    up(&mut dev, &config(1, DataRate::Sps250)).unwrap();
    dev.spi_mut().queue_stale_drdy(1);
    assert!(drdy.wait(SECOND).unwrap().unwrap().timestamp_ns < 150_000_000);
}
