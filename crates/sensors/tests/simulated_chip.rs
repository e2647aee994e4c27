//! The driver against the simulated chip: start-up, register read-back, frames, daisy chains,
//! faults.
use embedded_hal::spi::Operation;
use sensors::drdy::elapsed_ns;
use sensors::registers::{cmd, reg, Mux};
use sensors::signal::{SignalModel, SignalParams, Waveform};
use sensors::sim::{monotonic_ns, quantise, Pacing, SimChain, SimDrdy, SimError};
use sensors::{Ads1299, ChannelConfig, ClockTracker, Config, DataRate, Drdy, Error, Gain};

const SECOND: u64 = 1_000_000_000;

fn sine(amplitude_uv: f64, channels: usize) -> SignalModel {
    let p = SignalParams { waveform: Waveform::Sine, sine_hz: 10.0, amplitude_uv, ..Default::default() };
    SignalModel::new(p, channels)
}

fn config(chips: u8, gain: Gain) -> Config {
    Config { rate: DataRate::Sps1000, chips, channels: [ChannelConfig::normal(gain); 8], ..Config::default() }
}

/// A driver on a chain of `chips` simulated chips, and the chain's unpaced DRDY.
fn rig(chips: usize, model: SignalModel) -> (Ads1299<SimChain>, SimDrdy) {
    let sim = SimChain::new(chips, model);
    let drdy = sim.drdy(Pacing::Unpaced);
    (Ads1299::new(sim, chips).unwrap(), drdy)
}

/// The power-up sequence with its waits on the chain's virtual clock.
fn up(dev: &mut Ads1299<SimChain>, cfg: &Config) -> Result<sensors::DeviceId, Error<SimError>> {
    let mut delay = dev.spi_mut().delay();
    dev.start_up(cfg, &mut delay)
}

/// Waits for DRDY and reads one frame.
fn next(dev: &mut Ads1299<SimChain>, drdy: &mut SimDrdy, ch: &mut [i32]) -> sensors::FrameStatus {
    drdy.wait(SECOND).unwrap().expect("a running chip gives DRDY");
    dev.read_frame(ch).unwrap()
}

#[test]
fn start_up_leaves_the_chip_configured_converting_in_rdatac() {
    let (mut dev, _) = rig(1, sine(100.0, 8));
    let mut cfg = config(1, Gain::X8);
    cfg.channels[3].mux = Mux::TestSignal;
    cfg.srb1 = true;
    let id = up(&mut dev, &cfg).unwrap();
    assert_eq!(id.channels, 8);
    let sim = dev.spi_mut();
    assert!(sim.running() && sim.rdatac());
    let want = cfg.registers();
    let got = sim.registers(0);
    assert_eq!(got[1..=0x11], want[1..=0x11]);
    assert_eq!(got[0x14..], want[0x14..]);
}

#[test]
fn registers_read_back_what_was_written_and_a_stuck_bit_is_caught() {
    let (mut dev, _) = rig(1, sine(100.0, 8));
    up(&mut dev, &config(1, Gain::X24)).unwrap();
    // Register commands are ignored in RDATAC mode: leave it first.
    dev.command(cmd::SDATAC).unwrap();
    dev.write_registers(reg::LOFF_SENSP, &[0xA5, 0x5A]).unwrap();
    let mut back = [0u8; 3];
    dev.read_registers(reg::LOFF_SENSP, &mut back).unwrap();
    assert_eq!(back, [0xA5, 0x5A, 0x00]);

    let (mut dev, _) = rig(1, sine(100.0, 8));
    dev.spi_mut().stick_bits(reg::CH3SET, 0x70);
    let err = up(&mut dev, &config(1, Gain::X2)).unwrap_err();
    match err {
        Error::ReadBack { name: "CH3SET", wrote: 0x10, read: 0x60, .. } => {}
        e => panic!("{e}"),
    }
    assert!(!dev.spi_mut().running(), "no START after a failed verification");
}

#[test]
fn frames_carry_negative_values_and_clip_at_both_ends_of_full_scale() {
    // 100 µV at gain 1: every value exact, half of them negative.
    let (mut dev, mut drdy) = rig(1, sine(100.0, 8));
    up(&mut dev, &config(1, Gain::X1)).unwrap();
    let mut ch = [0i32; 8];
    let mut reference = sine(100.0, 8);
    let mut uv = [0.0; 8];
    let mut negative = 0;
    for n in 0..200u64 {
        next(&mut dev, &mut drdy, &mut ch);
        reference.sample(n, 1000, &mut uv);
        assert_eq!(ch[0], quantise(uv[0], 1), "sample {n}");
        assert!(ch.iter().all(|&v| v == ch[0]));
        negative += (ch[0] < 0) as usize;
    }
    assert!((90..=110).contains(&negative), "{negative} negative samples of 200");

    // 250 mV at gain 24 (full scale ±187.5 mV): clipped at both ends.
    let (mut dev, mut drdy) = rig(1, sine(250_000.0, 8));
    up(&mut dev, &config(1, Gain::X24)).unwrap();
    let (mut lo, mut hi) = (0, 0);
    for _ in 0..100 {
        next(&mut dev, &mut drdy, &mut ch);
        lo = lo.min(ch[0]);
        hi = hi.max(ch[0]);
    }
    assert_eq!((lo, hi), (-8_388_608, 8_388_607));
}

#[test]
fn a_two_chip_daisy_chain_gives_sixteen_channels_in_order() {
    let (mut dev, mut drdy) = rig(2, sine(0.0, 16));
    for c in 0..16 {
        dev.spi_mut().set_offset_uv(c, 1000.0 * (c as f64 + 1.0));
    }
    let cfg = config(2, Gain::X1);
    assert_eq!(cfg.registers()[reg::CONFIG1 as usize] & 0x40, 0, "daisy-chain mode");
    up(&mut dev, &cfg).unwrap();
    assert_eq!(dev.channels(), 16);
    let mut ch = [0i32; 16];
    next(&mut dev, &mut drdy, &mut ch);
    let want: Vec<i32> = (0..16).map(|c| quantise(1000.0 * (c as f64 + 1.0), 1)).collect();
    assert_eq!(ch.to_vec(), want);
}

#[test]
fn a_wrong_device_id_is_an_error() {
    let (mut dev, _) = rig(1, sine(0.0, 8));
    dev.spi_mut().set_id(0, 0x92); // an ADS1298
    let err = up(&mut dev, &config(1, Gain::X24)).unwrap_err();
    assert!(matches!(err, Error::WrongId(0x92)), "{err}");
    assert!(err.to_string().contains("not an ADS1299"), "{err}");
}

#[test]
fn a_bad_status_marker_is_an_error_naming_the_chip() {
    let (mut dev, mut drdy) = rig(2, sine(0.0, 16));
    up(&mut dev, &config(2, Gain::X24)).unwrap();
    let mut ch = [0i32; 16];
    next(&mut dev, &mut drdy, &mut ch);
    dev.spi_mut().corrupt_status(1, Some(0x4F));
    drdy.wait(SECOND).unwrap();
    let err = dev.read_frame(&mut ch).unwrap_err();
    assert!(matches!(err, Error::BadStatus { chip: 1, byte: 0x4F }), "{err}");
}

#[test]
fn lead_off_bits_surface_in_the_status_word() {
    let (mut dev, mut drdy) = rig(2, sine(0.0, 16));
    let mut cfg = config(2, Gain::X24);
    cfg.lead_off.comparators = true;
    for c in &mut cfg.channels[..4] {
        c.loff_p = true;
        c.loff_n = true;
    }
    up(&mut dev, &cfg).unwrap();
    // Channel 2 of chip 0 and channel 1 (both inputs) and 6 (not watched) of chip 1 are off.
    dev.spi_mut().set_leads_off(0, 0b0000_0010, 0);
    dev.spi_mut().set_leads_off(1, 0b0010_0001, 0b0000_0001);
    let mut ch = [0i32; 16];
    let status = next(&mut dev, &mut drdy, &mut ch);
    assert_eq!(status.lead_off_p(), 0b0000_0001_0000_0010);
    assert_eq!(status.lead_off_n(), 0b0000_0001_0000_0000);
    assert_eq!(status.chips[1].loff_statp, 0b0000_0001);
}

#[test]
fn the_internal_test_signal_reaches_channels_muxed_to_it() {
    let (mut dev, mut drdy) = rig(1, sine(100.0, 8));
    let mut cfg = config(1, Gain::X1);
    cfg.test_signal.internal = true;
    for c in &mut cfg.channels {
        c.mux = Mux::TestSignal;
    }
    cfg.channels[7] = ChannelConfig::off();
    up(&mut dev, &cfg).unwrap();
    let mut ch = [0i32; 8];
    next(&mut dev, &mut drdy, &mut ch);
    assert_eq!(ch[0], quantise(1875.0, 1), "+(VREF / 2400) at the start of the period");
    assert_eq!(ch[7], 0, "powered down");
}

#[test]
fn paced_drdy_sleeps_to_each_sample_deadline_and_stamps_it() {
    let sim = SimChain::new(1, sine(0.0, 8));
    let mut drdy = sim.drdy(Pacing::PerSample);
    let mut dev = Ads1299::new(sim, 1).unwrap();
    let cfg = Config { rate: DataRate::Sps4000, ..config(1, Gain::X24) };
    up(&mut dev, &cfg).unwrap();
    let mut clock = ClockTracker::new(4000);
    let mut first = None;
    for _ in 0..20 {
        let ev = drdy.wait(SECOND).unwrap().unwrap();
        assert!(monotonic_ns() >= ev.timestamp_ns, "woke no earlier than the deadline");
        let tick = clock.on_drdy(ev);
        let t0 = *first.get_or_insert(ev.timestamp_ns);
        // A late wake loses samples (counted), but every stamp is on the sample grid.
        assert_eq!(ev.timestamp_ns, t0 + elapsed_ns(tick.index, 4000));
    }
    assert_eq!(clock.drift_ppm(), 0.0);
}

#[test]
fn a_stopped_chip_gives_no_drdy() {
    let (mut dev, mut drdy) = rig(1, sine(0.0, 8));
    up(&mut dev, &config(1, Gain::X24)).unwrap();
    dev.stop().unwrap();
    assert_eq!(drdy.wait(1_000_000).unwrap(), None);
}

#[test]
fn rdata_reads_one_frame_by_command_in_sdatac_mode() {
    let (mut dev, mut drdy) = rig(1, sine(0.0, 8));
    dev.spi_mut().set_offset_uv(2, -1000.0);
    up(&mut dev, &config(1, Gain::X1)).unwrap();
    dev.command(cmd::SDATAC).unwrap();
    drdy.wait(SECOND).unwrap().unwrap();
    // RDATA, then the 27 bytes of the frame, in one chip-select.
    let mut buf = [0u8; 28];
    buf[0] = cmd::RDATA;
    let hold = sensors::timing::T_SCCS_NS as u32;
    embedded_hal::spi::SpiDevice::transaction(
        dev.spi_mut(),
        &mut [Operation::TransferInPlace(&mut buf), Operation::DelayNs(hold)],
    )
    .unwrap();
    let mut ch = [0i32; 8];
    sensors::frame::parse(&buf[1..], &mut ch).unwrap();
    assert_eq!(ch[2], quantise(-1000.0, 1));
    assert!(!dev.spi_mut().rdatac());
}
