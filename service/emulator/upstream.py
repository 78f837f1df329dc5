"""The emulated upstream as one object: the store and its operations, grouped by concern, as the routes call them."""

from __future__ import annotations

from service.emulator.auth import Tokens
from service.emulator.cards import Cards
from service.emulator.clock import EmulatorClock
from service.emulator.config import EmulatorConfig
from service.emulator.control import Control
from service.emulator.customers import Customers
from service.emulator.issuer import Issuer
from service.emulator.kyc import Kyc
from service.emulator.phone import Phone
from service.emulator.questionnaire import Questionnaire
from service.emulator.store import Store


class Emulator:
    """One emulated Yativo: every group shares the same store, so they see each other's writes at once."""

    def __init__(self, config: EmulatorConfig, clock: EmulatorClock) -> None:
        self.store = Store(config, clock)
        self.tokens = Tokens(self.store)
        self.customers = Customers(self.store)
        self.kyc = Kyc(self.store)
        self.questionnaire = Questionnaire(self.store)
        self.phone = Phone(self.store)
        self.cards = Cards(self.store)
        self.issuer = Issuer(self.store)
        self.control = Control(self.store)

    @property
    def config(self) -> EmulatorConfig:
        return self.store.config

    @property
    def clock(self) -> EmulatorClock:
        return self.store.clock
