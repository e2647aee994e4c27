//! The driver's exact bytes on the bus, as scripted transcripts: every expectation must be
//! used (`done()` fails otherwise) and nothing else may be sent.
use embedded_hal_mock::eh1::delay::NoopDelay;
use embedded_hal_mock::eh1::spi::{Mock, Transaction as T};
use sensors::registers::{cmd, reg};
use sensors::{Ads1299, ChannelConfig, Config, DataRate, Error, Gain};

fn command(op: u8) -> Vec<T<u8>> {
    vec![T::transaction_start(), T::write_vec(vec![op]), T::transaction_end()]
}

fn read(start: u8, response: Vec<u8>) -> Vec<T<u8>> {
    let head = vec![cmd::RREG | start, response.len() as u8 - 1];
    vec![T::transaction_start(), T::write_vec(head), T::read_vec(response), T::transaction_end()]
}

fn write(start: u8, data: &[u8]) -> Vec<T<u8>> {
    let mut bytes = vec![cmd::WREG | start, data.len() as u8 - 1];
    bytes.extend_from_slice(data);
    vec![T::transaction_start(), T::write_vec(bytes), T::transaction_end()]
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
    let mut dev = Ads1299::new(spi.clone(), 1).unwrap();
    let id = dev.start_up(&config(), &mut NoopDelay).unwrap();
    assert_eq!((id.channels, id.revision), (8, 1));
    spi.done();
}

#[test]
fn a_frame_is_one_read_of_27_bytes() {
    let mut frame = vec![0xC0, 0x10, 0x00]; // LOFF_STATP = CH1
    frame.extend_from_slice(&[0x7F, 0xFF, 0xFF, 0x80, 0x00, 0x00, 0xFF, 0xFF, 0xFF]);
    frame.extend_from_slice(&[0; 15]);
    let script = [vec![T::transaction_start(), T::read_vec(frame)], vec![T::transaction_end()]].concat();
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
    let cut = script.len() - 2 * 3;
    let mut spi = Mock::new(&script[..cut]);
    let mut dev = Ads1299::new(spi.clone(), 1).unwrap();
    let err = dev.start_up(&config(), &mut NoopDelay).unwrap_err();
    match err {
        Error::ReadBack { name, addr, wrote, read } => {
            assert_eq!((name, addr, wrote, read), ("CH1SET", reg::CH1SET, 0x50, 0x60))
        }
        e => panic!("{e}"),
    }
    spi.done();
}
