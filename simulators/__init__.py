"""The local venue simulators (`tradingd simulate <venue>`) and the synthetic data generators
(`tradingd generate`, a backtest's missing sample): one package per venue, written from the
venues' own documents (`../shared/protocols/VENUES.md`, the official API references) and real
captured frames. They are witnesses of the connectors, not mirrors: nothing here imports
`tradingd.connectors` (a house test checks it), so a misreading of a protocol has to be made
twice, independently, to go unseen. From the engine they share only the loopback server
(`tradingd.engine.sim`), the recording writer (the recording contract) and option pricing.

`synth` is the venue-neutral synthetic market every generator and simulator replays."""
