"""Methods and attribute access: instances, properties, inheritance."""


class Point(object):
    __slots__ = ("x", "y")

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def moved(self, dx, dy):
        return Point(self.x + dx, self.y + dy)

    def norm1(self):
        return abs(self.x) + abs(self.y)


class Account(object):
    rate = 3

    def __init__(self):
        self.balance = 0
        self.history = 0

    @property
    def doubled(self):
        return self.balance * 2

    def deposit(self, amount):
        self.balance += amount
        self.history += 1
        return self


class Savings(Account):
    def deposit(self, amount):
        return Account.deposit(self, amount * self.rate)


def main(n):
    p = Point(0, 0)
    acct = Savings()
    total = 0
    for i in range(n):
        p = p.moved(1, -1)
        acct.deposit(i).deposit(1)
        total += p.norm1() + acct.doubled
    return total


N = 8000
