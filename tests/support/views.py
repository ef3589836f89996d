"""Label Studio's Data Manager tabs of one project, kept in a dict: what tabs.py calls on client.views."""

from __future__ import annotations

from itertools import count
from types import SimpleNamespace


class FakeViews:
    def __init__(self, titles=(), first_id: int = 1):
        self.ids = count(first_id)
        self.held: dict[int, SimpleNamespace] = {}
        for title in titles:
            self.create(project=1, data={"title": title})

    def list(self, project):
        return list(self.held.values())

    def create(self, project, data):
        view = SimpleNamespace(id=next(self.ids), data=data)
        self.held[view.id] = view
        return view

    def update(self, id, project, data):
        self.held[int(id)].data = data
        return self.held[int(id)]

    def delete(self, id):
        del self.held[int(id)]

    def titles(self):
        return sorted(v.data["title"] for v in self.held.values())
