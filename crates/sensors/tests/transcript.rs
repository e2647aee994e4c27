//! The driver's exact bytes on the bus, as scripted transcripts: every expectation must be
//! used (`done()` fails otherwise) and nothing else may be sent.
//!
//! Delays are part of the transcript: inside a transaction (chip select held low) as
//! `T::delay(ns)`, and the long waits on the `DelayNs` provider as a `CheckedDelay` script.
use embedded_hal_mock::eh1::delay::{CheckedDelay, NoopDelay, Transaction as D};
use embedded_hal_mock::eh1::spi::{Mock, Transaction as T};
use sensors::registers::{cmd, reg};
use sensors::{Ads1299, ChannelConfig, Config, DataRate, Error, Gain};

/// tSCCS: 4 tCLK of the 2.048 MHz clock, rounded up (SBAS499 Timing Requirements).
const HOLD: u32 = 1954;
/// `RESET`: 18 tCLK before the next command.
const RESET_WAIT: u32 = 8790;
/// tPOR: 2^18 tCLK.
const POR: u32 = 128_000_000;
/// Reference buffer settling.
const SETTLE: u32 = 150_000_000;

fn command(op: u8) -> Vec<T<u8>> {
    let wait = if op == cmd::RESET { RESET_WAIT } else { HOLD };
    vec![T::transaction_start(), T::write_vec(vec![op]), T::delay(wait), T::transaction_end()]
}

fn read(start: u8, response: Vec<u8>) -> Vec<T<u8>> {
    let head = vec![cmd::RREG | start, response.len() as u8 - 1];
    vec![
        T::transaction_start(),
        T::write_vec(head),
        T::read_vec(response),
        T::delay(HOLD),
        T::transaction_end(),
    ]
}

fn write(start: u8, data: &[u8]) -> Vec<T<u8>> {
    let mut bytes = vec![cmd::WREG | start, data.len() as u8 - 1];
    bytes.extend_from_slice(data);
    vec![T::transaction_start(), T::write_vec(bytes), T::delay(HOLD), T::transaction_end()]
}

fn config() -> Config {
    let mut c = Config { rate: DataRate::Sps1000, ..Config::default() };
    c.channels[0] = ChannelConfig { loff_p: true, ..ChannelConfig::normal(Gain::X12) };
    c.channels[7] = ChannelConfig::off();
    c.lead_off.comparators = true;
    c
}

/// The register values `config()` stands for, spelled out from the datasheet.
const CONFIG1: u8 = 0xD4; // 1, multiple readback, no CLK out, 10, DR = 100 (1 kSPS)
const CONFIG2: u8 = 0xC0;
const CONFIG3: u8 = 0xE0; // reference buffer on, bias off
const BLOCK1: [u8; 17] = [
    CONFIG1, CONFIG2, CONFIG3, 0x00, // LOFF: 95 %, 6 nA, DC
    0x50, 0x60, 0x60, 0x60, 0x60, 0x60, 0x60, 0xE1, // CH1 gain 12, CH2–7 gain 24, CH8 off
    0x00, 0x00, 0x01, 0x00, 0x00, // BIAS_SENSP/N, LOFF_SENSP (CH1), LOFF_SENSN, LOFF_FLIP
];
const BLOCK2: [u8; 4] = [0x0F, 0x00, 0x00, 0x02]; // GPIO inputs, MISC1, MISC2, comparators on

fn start_up_script(id: u8, block1_back: [u8; 17]) -> Vec<T<u8>> {
    [
        command(cmd::RESET),
        command(cmd::SDATAC),
        read(reg::ID, vec![id]),
        write(reg::CONFIG3, &[CONFIG3]),
        write(reg::CONFIG1, &BLOCK1),
        write(reg::GPIO, &BLOCK2),
        read(reg::CONFIG1, block1_back.to_vec()),
        // Read-back of GPIO: the pins' levels in the high nibble do not count.
        read(reg::GPIO, vec![0xAF, 0x00, 0x00, 0x02]),
        command(cmd::RDATAC),
        command(cmd::START),
    ]
    .concat()
}

#[test]
fn start_up_sends_the_datasheet_sequence() {
    assert_eq!(config().registers()[1..=0x11], BLOCK1);
    let script = start_up_script(0x3E, BLOCK1);
    let mut spi = Mock::new(&script);
    let mut delay = CheckedDelay::new(&[D::delay_ns(SETTLE)]);
    let mut dev = Ads1299::new(spi.clone(), 1).unwrap();
    let id = dev.start_up(&config(), &mut delay).unwrap();
    assert_eq!((id.channels, id.revision), (8, 1));
    spi.done();
    delay.done();
}

#[test]
fn a_frame_is_one_read_of_27_bytes() {
    let mut frame = vec![0xC0, 0x10, 0x00]; // LOFF_STATP = CH1
    frame.extend_from_slice(&[0x7F, 0xFF, 0xFF, 0x80, 0x00, 0x00, 0xFF, 0xFF, 0xFF]);
    frame.extend_from_slice(&[0; 15]);
    let script = vec![T::transaction_start(), T::read_vec(frame), T::delay(HOLD), T::transaction_end()];
    let mut spi = Mock::new(&script);
    let mut dev = Ads1299::new(spi.clone(), 1).unwrap();
    let mut ch = [0i32; 8];
    let status = dev.read_frame(&mut ch).unwrap();
    assert_eq!(ch[..4], [8_388_607, -8_388_608, -1, 0]);
    assert_eq!(status.lead_off_p(), 1);
    spi.done();
}

#[test]
fn a_wrong_id_stops_the_start_up_before_any_write() {
    let script = [command(cmd::RESET), command(cmd::SDATAC), read(reg::ID, vec![0xFF])].concat();
    let mut spi = Mock::new(&script);
    let mut dev = Ads1299::new(spi.clone(), 1).unwrap();
    let err = dev.start_up(&config(), &mut NoopDelay).unwrap_err();
    assert!(matches!(err, Error::WrongId(0xFF)), "{err}");
    spi.done();
}

#[test]
fn a_register_that_reads_back_wrong_is_named() {
    let mut back = BLOCK1;
    back[4] = 0x60; // CH1SET reads gain 24 instead of 12
    let script = start_up_script(0x3E, back);
    // The sequence ends at the read-back: no RDATAC, no START.
    let cut = script.len() - 2 * 4;
    let mut spi = Mock::new(&script[..cut]);
    let mut dev = Ads1299::new(spi.clone(), 1).unwrap();
    let err = dev.start_up(&config(), &mut NoopDelay::new()).unwrap_err();
    match err {
        Error::ReadBack { name, addr, wrote, read } => {
            assert_eq!((name, addr, wrote, read), ("CH1SET", reg::CH1SET, 0x50, 0x60))
        }
        e => panic!("{e}"),
    }
    spi.done();
}

/// The read-back of the two register blocks and `RDATAC`, for `regs`.
fn verify_and_rdatac(regs: &[u8; 24]) -> Vec<T<u8>> {
    [
        read(reg::CONFIG1, regs[1..=0x11].to_vec()),
        read(reg::GPIO, regs[0x14..].to_vec()),
        command(cmd::RDATAC),
    ]
    .concat()
}

fn blocks(regs: &[u8; 24]) -> Vec<T<u8>> {
    [write(reg::CONFIG1, &regs[1..=0x11]), write(reg::GPIO, &regs[0x14..])].concat()
}

#[test]
fn at_16_mhz_every_byte_of_a_command_is_followed_by_the_decode_pause() {
    // 500 ns a byte: 1454 ns more make tSDECODE (4 tCLK) between the ends of two bytes.
    const GAP: u32 = 1454;
    let script = vec![
        T::transaction_start(),
        T::write_vec(vec![cmd::WREG | reg::LOFF_SENSP]),
        T::delay(GAP),
        T::write_vec(vec![1]),
        T::delay(GAP),
        T::write_vec(vec![0xA5]),
        T::delay(GAP),
        T::write_vec(vec![0x5A]),
        T::delay(HOLD),
        T::transaction_end(),
        T::transaction_start(),
        T::write_vec(vec![cmd::RREG | reg::ID]),
        T::delay(GAP),
        T::write_vec(vec![0]),
        T::delay(GAP),
        T::read_vec(vec![0x3E]),
        T::delay(HOLD),
        T::transaction_end(),
    ];
    let mut spi = Mock::new(&script);
    let mut dev = Ads1299::new(spi.clone(), 1).unwrap().with_sclk_hz(16_000_000);
    dev.write_registers(reg::LOFF_SENSP, &[0xA5, 0x5A]).unwrap();
    assert_eq!(dev.read_id().unwrap().channels, 8);
    spi.done();
}

/// The start-up of a chain whose chips 2…N run from chip 1's CLK output.
fn chain_script(chips: u8) -> (Config, Vec<T<u8>>) {
    let cfg = Config { chips, clock_out: true, rate: DataRate::Sps500, ..Config::default() };
    let regs = cfg.registers();
    // Daisy-chain mode (DAISY_EN' = 0), CLK_EN, 500 SPS: 1011 0101.
    assert_eq!(regs[reg::CONFIG1 as usize], 0xB5);
    let script = [
        command(cmd::RESET),
        command(cmd::SDATAC),
        // Chip 1's clock out on: chips 2…N start counting tPOR (the CheckedDelay's first wait)…
        write(reg::CONFIG1, &[0xB5]),
        // …then they hear SDATAC; no RESET after this, it would stop their clock.
        command(cmd::SDATAC),
        read(reg::ID, vec![0x3E]),
        write(reg::CONFIG3, &[0xE0]),
        blocks(&regs),
        verify_and_rdatac(&regs),
        command(cmd::START),
    ]
    .concat();
    (cfg, script)
}

#[test]
fn chains_of_2_and_4_switch_the_clock_on_and_wait_tpor_before_configuring() {
    for chips in [2u8, 4] {
        let (cfg, script) = chain_script(chips);
        let mut spi = Mock::new(&script);
        let mut delay = CheckedDelay::new(&[D::delay_ns(POR), D::delay_ns(SETTLE)]);
        let mut dev = Ads1299::new(spi.clone(), chips as usize).unwrap();
        dev.start_up(&cfg, &mut delay).unwrap();
        assert_eq!(dev.channels(), 8 * chips as usize);
        spi.done();
        delay.done();
    }
}

#[test]
fn a_chain_with_external_clocks_is_reset_once_and_configured() {
    let cfg = Config { chips: 2, rate: DataRate::Sps250, ..Config::default() };
    let regs = cfg.registers();
    assert_eq!(regs[reg::CONFIG1 as usize], 0x96, "daisy-chain mode, no clock out");
    let script = [
        command(cmd::RESET),
        command(cmd::SDATAC),
        read(reg::ID, vec![0x3E]),
        write(reg::CONFIG3, &[0xE0]),
        blocks(&regs),
        verify_and_rdatac(&regs),
    ]
    .concat();
    let mut spi = Mock::new(&script);
    let mut delay = CheckedDelay::new(&[D::delay_ns(SETTLE)]);
    let mut dev = Ads1299::new(spi.clone(), 2).unwrap();
    dev.configure(&cfg, &mut delay).unwrap();
    spi.done();
    delay.done();
}

/// Lead-off as eegd's `lead_off: { mode: ac, current_na: 6 }` sets it: AC at 31.2 Hz, 6 nA,
/// every positive input watched, comparators on.
fn lead_off_ac(mut cfg: Config) -> Config {
    cfg.lead_off.comparators = true;
    cfg.lead_off.frequency = sensors::config::LeadOffFrequency::Ac31_2Hz;
    for c in &mut cfg.channels {
        c.loff_p = true;
    }
    cfg
}

#[test]
fn lead_off_ac_is_switched_on_live() {
    let base = Config::default();
    let on = lead_off_ac(base);
    let regs = on.registers();
    // LOFF: 95 %, 6 nA (ILEAD_OFF = 00), 31.2 Hz (FLEAD_OFF = 10); LOFF_SENSP: all eight;
    // CONFIG4: PD_LOFF_COMP'.
    assert_eq!((regs[reg::LOFF as usize], regs[reg::LOFF_SENSP as usize], regs[0x17]), (0x02, 0xFF, 0x02));
    let script = [command(cmd::SDATAC), blocks(&regs), verify_and_rdatac(&regs)].concat();
    let mut spi = Mock::new(&script);
    let mut dev = Ads1299::new(spi.clone(), 1).unwrap();
    dev.apply(&on).unwrap();
    spi.done();
}

fn with_mux(mut cfg: Config, mux: sensors::Mux) -> Config {
    for c in &mut cfg.channels {
        c.mux = mux;
    }
    cfg.test_signal.internal = mux == sensors::Mux::TestSignal;
    cfg
}

#[test]
fn the_test_signal_is_internal_and_on_every_channel() {
    let cfg = with_mux(Config::default(), sensors::Mux::TestSignal);
    let regs = cfg.registers();
    // CONFIG2: INT_CAL, 1 × amplitude, fCLK / 2^21; CHnSET: gain 24, MUX = 101.
    assert_eq!(regs[reg::CONFIG2 as usize], 0xD0);
    assert!(regs[reg::CH1SET as usize..=reg::CH8SET as usize].iter().all(|&r| r == 0x65));
    let script = [command(cmd::SDATAC), blocks(&regs), verify_and_rdatac(&regs)].concat();
    let mut spi = Mock::new(&script);
    let mut dev = Ads1299::new(spi.clone(), 1).unwrap();
    dev.apply(&cfg).unwrap();
    spi.done();
}

#[test]
fn the_self_test_runs_test_signal_then_shorted_inputs_then_restores() {
    let normal = Config::default();
    let test = with_mux(normal, sensors::Mux::TestSignal);
    let shorted = with_mux(normal, sensors::Mux::Shorted);
    assert!(shorted.registers()[reg::CH1SET as usize..=reg::CH8SET as usize].iter().all(|&r| r == 0x61));
    let step = |c: &Config| {
        let r = c.registers();
        [command(cmd::SDATAC), blocks(&r), verify_and_rdatac(&r)].concat()
    };
    let script = [step(&test), step(&shorted), step(&normal)].concat();
    let mut spi = Mock::new(&script);
    let mut dev = Ads1299::new(spi.clone(), 1).unwrap();
    for c in [&test, &shorted, &normal] {
        dev.apply(c).unwrap();
    }
    spi.done();
}
