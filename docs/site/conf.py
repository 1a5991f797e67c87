# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sphinx configuration of the documentation site (started from `antsibull-docs sphinx-init`).

`make docs` stages the sources next to each other and builds them with this file:
the collection reference that antsibull-docs generates from the modules' and roles'
documentation (in ``collection/``), the Markdown pages of docs/ read by MyST, and
the diagrams the documentation check rendered (in ``_diagrams/``).
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

project = "selfhosted.github_runners"
copyright = "selfhosted.github_runners contributors"
title = "selfhosted.github_runners"
html_short_title = "selfhosted.github_runners"

extensions = ["sphinx_antsibull_ext", "myst_parser", "mermaid_images", "ansible_docs_links"]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"

# Markdown pages: ```mermaid fences are diagrams (mermaid_images), and headings get
# the anchors GitHub gives them, so the same links work on both.
myst_fence_as_directive = ["mermaid"]
myst_heading_anchors = 3

pygments_style = "ansible"
highlight_language = "YAML+Jinja"

html_theme = "sphinx_ansible_theme"
html_theme_options = {
    "topbar_links": {},  # the theme's default links go to Ansible's own sites
    "show_extranav": False,
    "show_rtd_ethical_ads": False,
    "display_version": False,
}
html_show_sphinx = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False
html_scaled_image_link = True

# The site is built offline: no intersphinx inventories are fetched.
default_role = "any"
nitpicky = True


def _home_link_per_page(app, pagename, templatename, context, doctree):
    # The theme's logo links to its `documentation_home_url` ("/" by default), which
    # is not this site's home wherever the site is served from: link each page to it.
    context["theme_documentation_home_url"] = context["pathto"](root_doc)


def setup(app):
    app.connect("html-page-context", _home_link_per_page)
