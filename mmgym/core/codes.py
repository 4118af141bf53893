"""Small integer codes shared by the kernels and the Python front end.

Sides follow the exchange convention ``BUY = 1``, ``SELL = -1`` so that a
fill changes a position by ``qty * side``. Inside the book, side *slots* are
``BID = 0`` and ``ASK = 1``.
"""

# Order sides.
BUY = 1
SELL = -1

# Book side slots.
BID = 0
ASK = 1

# Market kinds.
PERP = 0
SPOT = 1

# Order kinds (column ``kind`` of an order batch).
LIMIT = 0  # good-till-cancel: matches, then rests
POST_ONLY = 1  # rejected if it would take
IOC = 2  # matches, the rest is cancelled
MARKET = 3  # IOC limited by the price band
CANCEL = 4  # cancel one order by id
CANCEL_ALL = 5  # cancel every order of the account in the market
ORDER_KIND_NAMES = ("limit", "post_only", "ioc", "market", "cancel", "cancel_all")

# Order statuses (column ``status`` of the results).
ACCEPTED = 0  # fully filled, resting, or cancelled as asked
REJECT_PRICE_BAND = 1
REJECT_POST_ONLY = 2
REJECT_MARGIN = 3
REJECT_BALANCE = 4  # spot sell beyond holdings
REJECT_UNKNOWN_ORDER = 5
REJECT_BOOK_FULL = 6
REJECT_IN_LIQUIDATION = 7
REJECT_HALTED = 8
REJECT_POSITION_LIMIT = 9
REJECT_REDUCE_ONLY = 10  # a unified account below its reduce-only uniMMR
STATUS_NAMES = (
    "accepted",
    "price_band",
    "post_only_would_take",
    "insufficient_margin",
    "insufficient_balance",
    "unknown_order",
    "book_full",
    "account_in_liquidation",
    "market_halted",
    "position_limit",
    "reduce_only",
)

# Columns of an order batch (int64 array, one row per event).
O_ENV, O_MARKET, O_ACCOUNT, O_KIND, O_SIDE, O_PRICE, O_QTY, O_REF = range(8)
ORDER_COLUMNS = 8

# Columns of the results (int64 array, one row per event).
R_STATUS, R_ORDER_ID, R_FILLED = range(3)
RESULT_COLUMNS = 3

# Columns of the fill log (int64 ring buffer per env).
F_STEP, F_MARKET, F_MAKER, F_TAKER, F_PRICE, F_QTY, F_TAKER_SIDE, F_LIQUIDATION = range(8)
FILL_COLUMNS = 8

# ADL ranking formulas.
ADL_BITMEX = 0
ADL_BINANCE = 1
ADL_HYPERLIQUID = 2
ADL_FORMULA_NAMES = ("bitmex", "binance", "hyperliquid")

# Account kinds.
CROSS = 0  # cross-margin USDT wallet; spot holdings do not count as margin
UNIFIED = 1  # spot holdings count as collateral at price * collateral_ratio

# Per-market statistics, one row per step (index into ``market_stats``).
(
    S_MID,
    S_BEST_BID,
    S_BEST_ASK,
    S_SPREAD,
    S_DEPTH_BID,
    S_DEPTH_ASK,
    S_DEPTH,
    S_INDEX,
    S_MARK,
    S_LAST,
    S_OPEN_INTEREST,
    S_VOLUME,
    S_LIQ_COUNT_LONG,
    S_LIQ_COUNT_SHORT,
    S_LIQ_NOTIONAL_LONG,
    S_LIQ_NOTIONAL_SHORT,
    S_TAKEOVER_NOTIONAL,
    S_ADL_COUNT,
    S_ADL_NOTIONAL,
    S_COLLATERAL_PRICE,
) = range(20)
MARKET_STAT_NAMES = (
    "mid",
    "best_bid",
    "best_ask",
    "spread",
    "depth_bid_1pct",
    "depth_ask_1pct",
    "depth_1pct",
    "index",
    "mark",
    "last",
    "open_interest",
    "volume",
    "liq_count_long",
    "liq_count_short",
    "liq_notional_long",
    "liq_notional_short",
    "takeover_notional",
    "adl_count",
    "adl_notional",
    "collateral_price",
)

# Per-env statistics.
(
    E_INSURANCE_FUND,
    E_FUND_PAYOUT,
    E_SOCIALISED_LOSS,
    E_FEES,
    E_ACCOUNTS_IN_LIQ,
    E_FUND_UTILISATION,
    E_FUND_UTILISATION_AT_ADL,
) = range(7)
ENV_STAT_NAMES = (
    "insurance_fund",
    "fund_payout",
    "socialised_loss",
    "fees_collected",
    "accounts_in_liquidation",
    "fund_utilisation",
    "fund_utilisation_at_adl",
)
