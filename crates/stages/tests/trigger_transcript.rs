//! Hardware triggers on the bus, as a scripted transcript (embedded-hal-mock, exact bytes): the
//! `GPIO` register written as the datasheet gives it for the pins read as triggers, then RDATAC
//! frames whose status words carry GPIO levels, and the markers those give, each on the sample
//! whose status word first shows its pin high.
use embedded_hal_mock::eh1::delay::NoopDelay;
use embedded_hal_mock::eh1::spi::{Mock, Transaction as T};
use sensors::registers::{cmd, reg};
use sensors::testing::{command, read, write, HOLD};
use sensors::{Ads1299, ClockTracker, Config, DataRate, DrdyEvent};
use stages::markers::{MarkerHub, Origin};
use stages::triggers::{TriggerPins, Triggers};

/// One RDATAC frame: the status word (`1100`, LOFF_STATP = 0, LOFF_STATN = 0, GPIOD[4:1] =
/// `gpio`), then eight channels of value `n`.
fn frame(gpio: u8, n: u8) -> Vec<T<u8>> {
    let mut f = vec![0xC0, 0x00, gpio & 0x0F];
    for _ in 0..8 {
        f.extend_from_slice(&[0x00, 0x00, n]);
    }
    vec![T::transaction_start(), T::read_vec(f), T::delay(HOLD), T::transaction_end()]
}

#[test]
fn gpio_bits_in_status_words_become_markers_on_their_samples() {
    // `triggers: { gpio1: stim, gpio3: response }`, and only those two pins as inputs.
    let pins =
        TriggerPins { gpio1: Some("stim".into()), gpio3: Some("response".into()), ..Default::default() };
    let cfg = Config { rate: DataRate::Sps1000, gpio_inputs: pins.mask(), ..Config::default() };
    let regs = cfg.registers();
    // GPIO (address 14h): GPIOD[4:1] = 0000 (outputs low), GPIOC[4:1] = 0101 (1 = input):
    // GPIO1 and GPIO3 inputs, GPIO2 and GPIO4 outputs.
    const GPIO: u8 = 0b0000_0101;
    assert_eq!(regs[reg::GPIO as usize], GPIO);
    let block1 = regs[reg::CONFIG1 as usize..=reg::LOFF_FLIP as usize].to_vec();
    // Per sample, GPIOD[4:1] as the status word gives it. The last sample has GPIO2 and GPIO4
    // high (outputs reading high, not watched) and GPIO1 still high: no marker.
    let levels = [0b0000, 0b0001, 0b0001, 0b0101, 0b0100, 0b0000, 0b0001, 0b1011];
    let script = [
        command(cmd::RESET),
        command(cmd::SDATAC),
        read(reg::ID, vec![0x3E]),
        write(reg::CONFIG3, &[regs[reg::CONFIG3 as usize]]),
        write(reg::CONFIG1, &block1),
        write(reg::GPIO, &[GPIO, 0x00, 0x00, 0x00]),
        read(reg::CONFIG1, block1.clone()),
        // Pin levels (GPIO1 high) are in the high nibble of the read-back and do not count.
        read(reg::GPIO, vec![0x10 | GPIO, 0x00, 0x00, 0x00]),
        command(cmd::RDATAC),
        command(cmd::START),
        levels.iter().enumerate().flat_map(|(n, &g)| frame(g, n as u8)).collect(),
    ]
    .concat();
    let mut spi = Mock::new(&script);
    let mut dev = Ads1299::new(spi.clone(), 1).unwrap();
    dev.start_up(&cfg, &mut NoopDelay).unwrap();

    // The acquisition loop, sample by sample: DRDY → frame → clock → triggers.
    let sub = MarkerHub::global().subscribe();
    let t0 = 1_700_000_000_000_000_000i64;
    let mut triggers = Triggers::new(1000, &pins, &[]);
    let mut clock = ClockTracker::new(1000);
    let mut ch = [0i32; 8];
    for n in 0..levels.len() as u64 {
        let drdy_ns = 5_000_000 + n * 1_000_000;
        let tick = clock.on_drdy(DrdyEvent { timestamp_ns: drdy_ns, missed: 0 });
        if n == 0 {
            triggers.start(t0);
        }
        let status = dev.read_frame(&mut ch).unwrap();
        assert_eq!(ch[0], n as i32);
        triggers.on_sample(tick, drdy_ns, status.chips[0].gpio);
    }
    spi.done();
    MarkerHub::global().unsubscribe(&sub);
    let got: Vec<(i64, String, Origin)> = std::iter::from_fn(|| sub.pop())
        .map(|m| ((m.timestamp_ns - t0) / 1_000_000, m.text.to_string(), m.origin))
        .collect();
    // GPIO1 rises on samples 1 and 6 (held high on 2–3: once), GPIO3 on sample 3; GPIO2/4 are
    // not watched. Sample n is at t0 + n ms.
    let want = [(1, "stim"), (3, "response"), (6, "stim")];
    assert_eq!(got, want.map(|(n, l)| (n, l.to_string(), Origin::Trigger)));
}
