# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sphinx extension: the labels of Ansible's own documentation that the generated reference links to.

antsibull-docs writes ``:ref:`` links to pages of docs.ansible.com (common return
values, ansible.builtin modules), which intersphinx would resolve from an inventory
downloaded at build time. The site is built offline, so those labels are resolved
here to their published pages. A label not known here stays an error.
"""

from __future__ import annotations

import re
import typing as t

ANSIBLE_DOCS = "https://docs.ansible.com/projects/ansible/latest/"
PAGES = {
    "common_return_values": "reference_appendices/common_return_values.html",
    "ansible_configuration_settings": "reference_appendices/config.html",
}
_BUILTIN = re.compile(r"ansible_collections\.ansible\.builtin\.(?P<name>\w+)_(?P<kind>module|lookup|filter|test)")


def url_of(label: str) -> t.Optional[str]:
    builtin = _BUILTIN.fullmatch(label)
    if builtin is not None:
        return f"{ANSIBLE_DOCS}collections/ansible/builtin/{builtin['name']}_{builtin['kind']}.html"
    page = PAGES.get(label)
    return ANSIBLE_DOCS + page if page else None


def setup(app: t.Any) -> t.Dict[str, t.Any]:
    from docutils import nodes

    def resolve(app: t.Any, env: t.Any, node: t.Any, contnode: t.Any) -> t.Any:
        if node.get("reftype") != "ref":
            return None
        url = url_of(node.get("reftarget", ""))
        if url is None:
            return None
        return nodes.reference("", "", contnode, internal=False, refuri=url)

    app.connect("missing-reference", resolve)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
