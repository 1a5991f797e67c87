# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The attributes every module shares; each module adds its check and diff support. List this
    # fragment before ansible.builtin.action_common_attributes: earlier fragments win a merge.
    DOCUMENTATION = r"""
attributes:
  platform:
    platforms: posix
  action_group:
    support: full
    membership:
      - selfhosted.github_runners.github_runners
"""
