# isaac-deploy's part of the dev image's /etc/bash.bashrc (every user's interactive bash):
# ROS 2 set up with its completion, and the shell history kept in the profile's history volume
# (each uid its own file, written after every command, so `stop` loses nothing).
if [ -n "${ISAAC_ROS_DISTRO:-}" ] && [ -f "/opt/ros/$ISAAC_ROS_DISTRO/setup.bash" ]; then
    # shellcheck disable=SC1090 # the image's ROS 2 distribution
    . "/opt/ros/$ISAAC_ROS_DISTRO/setup.bash"
fi
if [ -d /var/lib/isaac-deploy/history ] && [ -w /var/lib/isaac-deploy/history ]; then
    HISTFILE="/var/lib/isaac-deploy/history/bash_history.$(id -u)"
    HISTSIZE=10000
    HISTFILESIZE=100000
    shopt -s histappend
    PROMPT_COMMAND="history -a${PROMPT_COMMAND:+; $PROMPT_COMMAND}"
fi
