@echo off
rem 5.2) data_dst util faceset resize: resize the faces of data_dst/aligned (landmarks and masks
rem follow). Asks the size.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" facesettool resize ^
    --input-dir "%WORKSPACE%\data_dst\aligned" ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
