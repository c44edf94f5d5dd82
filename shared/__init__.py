"""Code the Xianjie services share: events, bus, config, time and geo helpers."""
